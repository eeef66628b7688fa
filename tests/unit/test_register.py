"""The request register: due dates by each controller's region, encrypted identities, idempotent
import by reference, pauses, extensions and closing, all audited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from include.common.errors import DataKeyDestroyed, InvalidInput, UnknownRecord
from include.common.settings import WorkflowSettings
from include.duties.enquiries import purge_closed_enquiries, record_outcome
from include.duties.retention import sweep_expired
from include.requests.importer import import_requests
from include.requests.register import (
    close_request,
    complete_request,
    extend_request,
    get_request,
    pause_request,
    refuse_request,
    register_request,
    request_cipher,
    request_identities,
    request_subjects,
    requests_received,
    resume_request,
    shred_closed_requests,
    start_request,
)
from include.vault.holds import place_hold
from include.vault.schema import audit_event, request_identity
from include.vault.store import NewRecord
from tests.helpers import instruct

AT = datetime(2026, 10, 30, 12, tzinfo=UTC)
EMAIL = "Ada.Lovelace@Example.org"


@pytest.fixture
def regions(vault):
    vault.add_controller("acme", "Acme Ltd", "england-and-wales", actor="test")
    vault.add_controller("thistle", "Thistle Ltd", "scotland", actor="test")
    return vault


def test_a_request_is_due_by_its_controllers_region_and_keeps_its_identities_encrypted(regions):
    ids = {c: register_request(regions, controller_id=c, kind="access", received_on=date(2026, 10, 30),
                               identities={"email": [EMAIL], "phone": ["01632 960 001"]}, actor="test", at=AT)
           for c in ("acme", "thistle")}
    assert get_request(regions, ids["acme"]).due_on == date(2026, 11, 30)
    assert get_request(regions, ids["thistle"]).due_on == date(2026, 12, 1)  # St Andrew's Day
    assert request_identities(regions, ids["acme"]) == [("email", "ada.lovelace@example.org"),
                                                        ("phone", "+441632960001")]
    with regions.engine.connect() as conn:
        stored = b"".join(conn.execute(sa.select(request_identity.c.ciphertext)).scalars())
        audit = " ".join(str(row) for row in conn.execute(sa.select(audit_event)).all())
    for plain in (b"ada.lovelace", b"Ada.Lovelace", b"1632960001"):
        assert plain not in stored and plain.decode() not in audit
    with regions.engine.connect() as conn:
        assert regions.audit.verify(conn).ok


def test_importing_a_reference_twice_registers_it_once(regions):
    first = register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 9, 1),
                             identities={"email": [EMAIL]}, reference="TICKET-1", actor="import", at=AT)
    again = register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 9, 1),
                             identities={"email": [EMAIL]}, reference="TICKET-1", actor="import", at=AT)
    assert first == again
    assert requests_received(regions, date(2026, 9, 1), date(2026, 9, 2)) == [first]
    assert requests_received(regions, date(2026, 9, 2), date(2026, 9, 3)) == []


def test_a_pause_moves_the_due_date_and_an_extension_needs_notice_before_the_deadline(regions):
    request = register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 6, 1),
                               identities={"email": [EMAIL]}, identity_verified_on=date(2026, 6, 3),
                               actor="test", at=AT)
    assert get_request(regions, request).clock_start == date(2026, 6, 3)
    assert get_request(regions, request).due_on == date(2026, 7, 3)
    start_request(regions, request, subject_id=None, actor="test", at=AT)
    pause_request(regions, request, on=date(2026, 6, 10), reason="clarification", actor="test", at=AT)
    resumed = resume_request(regions, request, on=date(2026, 6, 15), actor="test", at=AT)
    assert (resumed.paused_days, resumed.due_on, resumed.status) == (5, date(2026, 7, 8), "in_progress")
    with pytest.raises(InvalidInput, match="comes after the first deadline 2026-07-08"):
        extend_request(regions, request, months=2, reason="many stores", notified_on=date(2026, 7, 9),
                       actor="test", at=AT)
    extended = extend_request(regions, request, months=2, reason="many stores", notified_on=date(2026, 7, 1),
                              actor="test", at=AT)
    assert extended.due_on == date(2026, 9, 8)
    done = complete_request(regions, request, package="acme/x.dsar", actor="test", at=AT)
    assert (done.status, done.package, done.is_open) == ("completed", "acme/x.dsar", False)
    with pytest.raises(InvalidInput, match="is already completed"):
        refuse_request(regions, request, reason="late", actor="test", at=AT)
    actions = [row.action for row in regions.engine.connect().execute(sa.select(audit_event.c.action))]
    assert actions[-6:] == ["request.received", "request.in_progress", "request.paused", "request.resumed",
                            "request.extended", "request.completed"]


@pytest.mark.parametrize(("bad_row", "fault"), [
    ("nobody,B-3,2026-10-29,bo@example.org", "controller: not a controller registered in the vault"),
    ("acme,B-3,2026-10-31,not-an-address", "email: email is not a valid address"),
    (f"acme,{'B' * 65},2026-10-29,bo@example.org", "reference: longer than 64 characters"),
], ids=["unknown controller", "malformed email", "reference too long"])
def test_an_import_with_one_bad_row_registers_nothing(regions, tmp_path, bad_row, fault):
    backlog = tmp_path / "backlog.csv"
    backlog.write_text("controller,reference,received_on,email\n"
                       "acme,B-1,2026-10-29,ada@example.org\nthistle,B-2,2026-10-30,cy@example.org\n" + bad_row + "\n")
    with pytest.raises(InvalidInput, match=f"backlog\\.csv:4: {fault}"):
        import_requests(regions, backlog, actor="import", at=AT)
    assert requests_received(regions, date(2026, 10, 1), date(2026, 11, 1), open_only=False) == []
    with regions.engine.connect() as conn:
        assert "request.received" not in set(conn.execute(sa.select(audit_event.c.action)).scalars())


def test_bad_requests_are_refused_with_what_is_wrong(regions):
    with pytest.raises(InvalidInput, match="kind 'forget' is not one of"):
        register_request(regions, controller_id="acme", kind="forget", received_on=date(2026, 6, 1),
                         identities={"email": [EMAIL]}, actor="test", at=AT)
    with pytest.raises(InvalidInput, match="email is not a valid address"):
        register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 6, 1),
                         identities={"email": ["not-an-address"]}, actor="test", at=AT)
    with pytest.raises(InvalidInput, match="identity kind 'shoe_size' is not one of"):
        register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 6, 1),
                         identities={"shoe_size": ["9"]}, actor="test", at=AT)
    with pytest.raises(InvalidInput, match="needs the subject's id or at least one identity"):
        register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 6, 1),
                         actor="test", at=AT)
    with pytest.raises(UnknownRecord, match="controller 'nobody' is not registered"):
        register_request(regions, controller_id="nobody", kind="access", received_on=date(2026, 6, 1),
                         identities={"email": [EMAIL]}, actor="test", at=AT)
    request = register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 6, 1),
                               identities={"email": [EMAIL]}, actor="test", at=AT)
    with pytest.raises(InvalidInput, match="a refusal needs its reasons"):
        refuse_request(regions, request, reason=" ", actor="test", at=AT)
    with pytest.raises(InvalidInput, match="is not paused"):
        resume_request(regions, request, on=date(2026, 6, 5), actor="test", at=AT)
    with pytest.raises(UnknownRecord, match="request nope does not exist"):
        get_request(regions, "nope")


# -- a request that matches two people ----------------------------------------------------------------

SHARED_PHONE = "01632 960 002"  # Bob's, given by Ada as hers (a household phone)
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def household(vault):
    """Ada and Bob, each with an answered enquiry and an invoice past its seven years; the phone is Bob's."""
    vault.add_controller("acme", "Acme Ltd", "england-and-wales", actor="test")
    instruct(vault, "acme", {"enquiry": "until the enquiry is closed", "quote": "until the enquiry is closed",
                             "invoice": "7 years from the end of the financial year"})
    people = {"ada": {"name": "Ada Lovelace", "email": EMAIL},
              "bob": {"name": "Bob Lovelace", "email": "bob@example.org", "phone": SHARED_PHONE}}
    subjects = {}
    for who, fields in people.items():
        (enquiry,) = vault.add_records([NewRecord(controller_id="acme", category="enquiry", purpose="answering",
                                                  source="web form", fields={**fields, "message": "a quote?"})],
                                       actor="test")
        subjects[who] = vault.read_record(enquiry).subject_id
        vault.add_records([NewRecord(controller_id="acme", category="invoice", purpose="accounting", source="ledger",
                                     subject_id=subjects[who], relates_to=date(2018, 6, 15),
                                     fields={"email": fields["email"], "amount_gbp": "120.00"})], actor="test")
        record_outcome(vault, enquiry, "answered", actor="test", at=NOW - timedelta(days=1))
    return vault, subjects


def test_a_request_matching_two_people_holds_both_from_the_purge_and_the_sweep_while_open(household):
    vault, subjects = household
    request = register_request(vault, controller_id="acme", kind="access", received_on=date(2026, 10, 30),
                               identities={"email": [EMAIL], "phone": [SHARED_PHONE]}, actor="test", at=NOW)
    assert get_request(vault, request).subject_id is None  # which one it is, the search decides
    purge = purge_closed_enquiries(vault, now=NOW, actor="test")
    assert (purge.enquiries, purge.held_by_open_request) == (0, 2)
    sweep = sweep_expired(vault, controller_id="acme", as_of=NOW, actor="test")
    assert (sweep.deleted, sweep.outcomes[0].kept_by_open_request) == (0, 2)
    for subject in subjects.values():
        assert len(vault.subject_record_ids(subject)) == 2
        assert vault.keystore.fetch([subject])

    close_request(vault, request, status="completed", actor="test", at=NOW + timedelta(hours=1))
    assert purge_closed_enquiries(vault, now=NOW + timedelta(hours=2), actor="test").enquiries == 2
    assert sweep_expired(vault, controller_id="acme", as_of=NOW + timedelta(hours=2), actor="test").deleted == 2
    assert vault.counts()["records"] == 0 and vault.keystore.fetch(list(subjects.values())) == {}


def test_the_register_lists_every_subject_a_request_matched(household):
    vault, subjects = household
    both = register_request(vault, controller_id="acme", kind="erase", received_on=date(2026, 10, 30),
                            identities={"email": [EMAIL], "phone": [SHARED_PHONE]}, actor="test", at=NOW)
    one = register_request(vault, controller_id="acme", kind="access", received_on=date(2026, 10, 30),
                           identities={"email": [EMAIL]}, actor="test", at=NOW)
    nobody = register_request(vault, controller_id="acme", kind="access", received_on=date(2026, 10, 30),
                              identities={"email": ["someone.else@example.org"]}, actor="test", at=NOW)
    assert request_subjects(vault, both) == sorted(subjects.values())
    assert get_request(vault, one).subject_id == subjects["ada"]
    assert request_subjects(vault, one) == [subjects["ada"]]
    assert request_subjects(vault, nobody) == []
    with vault.engine.connect() as conn:
        received = [json.loads(details) for details in conn.execute(sa.select(audit_event.c.details).where(
            audit_event.c.action == "request.received").order_by(audit_event.c.seq)).scalars()]
    assert [r.get("subjects_matched") for r in received] == [2, None, None]  # a count, never the values


# -- the end of the accountability period -------------------------------------------------------------

CLOSED = datetime(2026, 2, 1, 9, tzinfo=UTC)
PERIOD_ENDS = CLOSED + relativedelta(months=12)


def test_after_the_accountability_period_the_identities_no_longer_decrypt_and_the_request_stays(regions):
    assert WorkflowSettings().request_accountability_months == 12
    ids = {c: register_request(regions, controller_id=c, kind="access", received_on=date(2026, 1, 5),
                               identities={"email": [EMAIL], "phone": ["01632 960 001"]}, actor="test",
                               at=datetime(2026, 1, 5, tzinfo=UTC)) for c in ("acme", "thistle")}
    still_open = register_request(regions, controller_id="acme", kind="access", received_on=date(2026, 1, 6),
                                  identities={"email": [EMAIL]}, actor="test", at=datetime(2026, 1, 6, tzinfo=UTC))
    for request in ids.values():
        complete_request(regions, request, package=f"{request}.dsar", actor="test", at=CLOSED)
    place_hold(regions, controller_id="thistle", reason="a claim about the answer", actor="test", at=CLOSED)

    early = shred_closed_requests(regions, as_of=PERIOD_ENDS - timedelta(seconds=1), months=12, actor="test")
    assert (early.requests, early.keys_destroyed) == (0, 0)
    dry = shred_closed_requests(regions, as_of=PERIOD_ENDS, months=12, actor="test", dry_run=True)
    assert (dry.requests, dry.keys_destroyed, dry.kept_by_legal_hold) == (1, 0, 1)
    assert request_identities(regions, ids["acme"]) == [("email", "ada.lovelace@example.org"),
                                                        ("phone", "+441632960001")]

    done = shred_closed_requests(regions, as_of=PERIOD_ENDS, months=12, actor="test")
    assert (done.requests, done.keys_destroyed, done.kept_by_legal_hold, done.request_ids) == (1, 1, 1, [ids["acme"]])
    # The key is gone: what the request's identities (and work files) were encrypted under cannot be
    # had again, from this key store or by making a new key.
    assert regions.keystore.fetch([ids["acme"]]) == {}
    with pytest.raises(DataKeyDestroyed):
        regions.ciphers([ids["acme"]])
    with pytest.raises(DataKeyDestroyed, match="is completed and its key is destroyed"):
        request_cipher(regions, ids["acme"], PERIOD_ENDS)
    assert request_identities(regions, ids["acme"]) == []
    with regions.engine.connect() as conn:
        assert not conn.execute(sa.select(request_identity).where(
            request_identity.c.request_id == ids["acme"])).first()
        shredded = conn.execute(sa.select(audit_event.c.details).where(
            audit_event.c.action == "request.identities_shredded")).scalars().all()
    assert [json.loads(details) for details in shredded] == [
        {"request": ids["acme"], "closed_on": "2026-02-01", "accountability_months": 12}]
    with regions.engine.connect() as conn:
        assert regions.audit.verify(conn).ok

    # The register still lists the request, with its dates and outcome.
    kept = get_request(regions, ids["acme"])
    assert (kept.status, kept.received_on, kept.due_on, kept.package) == (
        "completed", date(2026, 1, 5), date(2026, 2, 5), f"{ids['acme']}.dsar")
    assert ids["acme"] in requests_received(regions, date(2026, 1, 1), date(2026, 2, 1), open_only=False)
    # The held request and the open one keep theirs; a second run changes nothing.
    assert request_identities(regions, ids["thistle"])[0] == ("email", "ada.lovelace@example.org")
    assert request_identities(regions, still_open) == [("email", "ada.lovelace@example.org")]
    again = shred_closed_requests(regions, as_of=PERIOD_ENDS + timedelta(days=1), months=12, actor="test")
    assert (again.requests, again.keys_destroyed) == (0, 0)
    with pytest.raises(InvalidInput, match="whole number of months, at least 1"):
        shred_closed_requests(regions, as_of=PERIOD_ENDS, months=0, actor="test")

"""The request register: due dates by each controller's region, encrypted identities, idempotent
import by reference, pauses, extensions and closing, all audited."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from include.errors import InvalidInput, UnknownRecord
from include.requests.register import (
    complete_request,
    extend_request,
    get_request,
    pause_request,
    refuse_request,
    register_request,
    request_identities,
    requests_received,
    resume_request,
    start_request,
)
from include.vault.schema import audit_event, request_identity

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
    assert regions.audit.verify(regions.engine.connect()).ok


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
    pause_request(regions, request, on=date(2026, 6, 10), actor="test", at=AT)
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

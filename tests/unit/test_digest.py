"""The privacy digest's content: which requests and complaints each controller's part lists, the mails'
recipients, and the notices of responses ready, on a real vault."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes, policy

import pytest

from include.common.yamlfiles import LoadedFile
from include.policies.instructions import ReviewGates, instructions_in_code
from include.requests.complaints import acknowledge_complaint, register_complaint
from include.requests.digest import (
    build_digests,
    contact_address,
    digest_mails,
    privacy_contacts,
    ready_mails,
    ready_responses,
    record_ready_notices,
)
from include.requests.register import (
    complete_request,
    get_request,
    hold_for_review,
    pause_request,
    register_request,
)
from include.vault.instructions import record_instructions
from include.vault.store import Vault

TODAY = date(2026, 11, 24)  # a Tuesday
AT = datetime(2026, 11, 24, 6, tzinfo=UTC)
PAGE = "https://airflow.agency.example/privacy-requests/"


def controller_with_contact(vault: Vault, controller_id: str, contact: str | None, name: str | None = None, *,
                            identity_checked: bool = False) -> None:
    """A controller whose instruction file gives this contact (and, with identity_checked, asks for each
    requester's identity to be checked first: its new requests await identity)."""
    loaded = instructions_in_code(controller_id, {"client": "6 years after the contract ends"},
                                  given_on=date(2024, 1, 1), name=name or f"{controller_id} Ltd",
                                  region="england-and-wales")
    content = loaded.content.model_copy(update={"contact": contact, "review": ReviewGates(identity=identity_checked)})
    record_instructions(vault, [LoadedFile(loaded.path, content, {})], actor="test", at=AT)


def request(vault: Vault, controller_id: str, received_on: date, email: str) -> str:
    return register_request(vault, controller_id=controller_id, kind="access", received_on=received_on,
                            identities={"email": [email]}, actor="test", at=AT)


def case(vault: Vault, request_id: str) -> str:
    reference = get_request(vault, request_id).case_reference
    assert reference
    return reference


@pytest.mark.parametrize(("contact", "address"), [
    ("privacy@shop.example", "privacy@shop.example"),
    ("Jo Bloggs <jo@shop.example>", "jo@shop.example"),
    ("Managing Director, Fenland Cycles Ltd, 3 Market Street, Ely CB7 4LS; privacy@fenland-cycles.example",
     "privacy@fenland-cycles.example"),
    ("Managing Director, Fenland Cycles Ltd, 3 Market Street", None),
    ("", None),
    (None, None),
    ("@", None),
])
def test_the_contact_address_is_the_first_address_in_the_contact(contact, address):
    assert contact_address(contact) == address


@pytest.fixture
def caseload_world(vault):
    """Two controllers with requests in each state the digest lists, and a third with no address."""
    controller_with_contact(vault, "alpha", "Privacy Team <privacy@alpha.example>", name="Alpha & Sons Ltd")
    controller_with_contact(vault, "bravo", "Director, Bravo Ltd, 1 High Street; dpo@bravo.example")
    controller_with_contact(vault, "charlie", "Director, Charlie Ltd")
    ids = {
        "urgent": request(vault, "alpha", date(2026, 10, 26), "a1@people.example"),  # due 26 November: 2 days
        "due_in_7": request(vault, "alpha", date(2026, 11, 1), "a2@people.example"),  # due 1 December
        "later": request(vault, "alpha", date(2026, 11, 10), "a3@people.example"),  # due 10 December
        "overdue": request(vault, "alpha", date(2026, 10, 20), "a4@people.example"),  # due 20 November
        "review": request(vault, "alpha", date(2026, 11, 2), "a5@people.example"),  # due 2 December
        "paused": request(vault, "alpha", date(2026, 10, 22), "a6@people.example"),  # due 23 November, paused
        "bravo_overdue": request(vault, "bravo", date(2026, 10, 16), "b1@people.example"),  # due 16 November
        "charlie_due": request(vault, "charlie", date(2026, 11, 1), "c1@people.example"),
    }
    controller_with_contact(vault, "alpha", "Privacy Team <privacy@alpha.example>", name="Alpha & Sons Ltd",
                            identity_checked=True)
    ids["identity"] = request(vault, "alpha", date(2026, 11, 20), "a7@people.example")
    hold_for_review(vault, ids["review"], package="alpha/access-review.sealed", actor="test", at=AT)
    pause_request(vault, ids["paused"], on=date(2026, 11, 3), reason="clarification", actor="test", at=AT)
    waiting = register_complaint(vault, controller_id="bravo", received_on=date(2026, 11, 1), actor="test", at=AT)
    answered = register_complaint(vault, controller_id="bravo", received_on=date(2026, 11, 2), actor="test", at=AT)
    acknowledge_complaint(vault, answered.reference, on=date(2026, 11, 3), actor="test", at=AT)
    return vault, {name: case(vault, request_id) for name, request_id in ids.items()}, waiting


def test_each_controller_s_digest_lists_its_requests_by_what_they_need(caseload_world):
    vault, cases, waiting = caseload_world
    alpha, bravo, charlie = build_digests(vault, today=TODAY)

    assert [line.case_reference for line in alpha.due_soon] == [cases["urgent"], cases["due_in_7"]]
    assert [line.case_reference for line in alpha.urgent] == [cases["urgent"]]
    assert [line.case_reference for line in alpha.overdue] == [cases["overdue"]]
    assert [line.case_reference for line in alpha.awaiting_review] == [cases["review"]]
    # Its clock stopped, a paused request is neither due nor overdue, whatever its due date says.
    assert [line.case_reference for line in alpha.paused] == [cases["paused"]]
    assert [line.case_reference for line in alpha.awaiting_identity] == [cases["identity"]]
    assert cases["later"] not in {line.case_reference for line in alpha.due_soon + alpha.overdue}
    assert alpha.complaints_to_acknowledge == ()
    assert [line.case_reference for line in bravo.overdue] == [cases["bravo_overdue"]]
    assert [(c.reference, c.acknowledge_by) for c in bravo.complaints_to_acknowledge] == [
        (waiting.reference, date(2026, 12, 1))]
    assert [line.case_reference for line in charlie.due_soon] == [cases["charlie_due"]]
    for digest in (alpha, bravo, charlie):  # the counts the Privacy requests page's dashboard shows
        figures = digest.figures
        assert (len(digest.due_soon), len(digest.overdue), len(digest.awaiting_review), len(digest.awaiting_identity),
                len(digest.paused), len(digest.complaints_to_acknowledge)) == (
            figures.due_this_week, figures.overdue, figures.awaiting_review, figures.awaiting_identity,
            figures.paused, figures.complaints_to_acknowledge)
    assert alpha.warning() == (f"alpha: 1 request due within 3 days ({cases['urgent']}), "
                               f"1 overdue ({cases['overdue']})")
    assert bravo.warning() == f"bravo: 0 requests due within 3 days, 1 overdue ({cases['bravo_overdue']})"


def test_each_controller_with_an_address_gets_its_own_part_and_the_agency_gets_every_controller(caseload_world):
    vault, cases, waiting = caseload_world
    digests = build_digests(vault, today=TODAY)
    contacts = privacy_contacts(vault)
    assert contacts == {"alpha": "privacy@alpha.example", "bravo": "dpo@bravo.example", "charlie": None}

    mails = digest_mails(digests, contacts=contacts, agency_mailbox="privacy@agency.example", page_url=PAGE,
                         today=TODAY)

    assert [(m.to, m.audience) for m in mails] == [
        ("privacy@alpha.example", "alpha"), ("dpo@bravo.example", "bravo"), ("privacy@agency.example", "the agency")]
    alpha, bravo, agency = mails
    assert alpha.subject == "Privacy requests digest, 24 November 2026: Alpha & Sons Ltd (2 urgent or overdue)"
    assert "Due within 7 days: 2" in alpha.text
    assert f"URGENT  {cases['urgent']}  Access, " in alpha.text and "due 26 November 2026 (2 days left)" in alpha.text
    assert f"{cases['overdue']}  Access, " in alpha.text and "(4 days overdue)" in alpha.text
    assert "Awaiting review: 1" in alpha.text and "Awaiting identity (clock stopped): 1" in alpha.text
    assert "Paused (clock stopped): 1" in alpha.text and "paused (clarification)" in alpha.text
    assert cases["bravo_overdue"] not in alpha.text + alpha.html
    assert f"{waiting.reference}  received 1 November 2026, acknowledge by 1 December 2026" in bravo.text
    listed = [reference for name, reference in cases.items() if name != "later"]  # due in 16 days: nothing to do
    assert all(reference in agency.text and reference in agency.html for reference in listed)
    assert cases["later"] not in agency.text + agency.html
    assert "Alpha &amp; Sons Ltd" in alpha.html and "Alpha & Sons Ltd" in alpha.text
    assert all(PAGE in m.text and f'href="{PAGE}"' in m.html for m in mails)


def test_a_message_has_a_plain_text_part_and_the_same_in_html(caseload_world):
    vault, cases, _ = caseload_world
    [mail, *_] = digest_mails(build_digests(vault, today=TODAY), contacts=privacy_contacts(vault),
                              agency_mailbox=None, page_url=PAGE, today=TODAY)

    parsed = message_from_bytes(mail.message("digest@agency.example").as_bytes(), policy=policy.default)

    assert parsed["From"] == "digest@agency.example" and parsed["To"] == "privacy@alpha.example"
    text, html = (parsed.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html"))
    assert cases["urgent"] in text and cases["urgent"] in html and "<table" in html and "<table" not in text


def test_no_agency_mailbox_means_the_controllers_alone_are_mailed(caseload_world):
    vault, _, _ = caseload_world
    mails = digest_mails(build_digests(vault, today=TODAY), contacts=privacy_contacts(vault), agency_mailbox=None,
                         page_url=PAGE, today=TODAY)
    assert [m.audience for m in mails] == ["alpha", "bravo"]


def test_responses_completed_in_the_period_are_ready_once(vault):
    controller_with_contact(vault, "alpha", "privacy@alpha.example")
    in_period = request(vault, "alpha", date(2026, 11, 2), "a1@people.example")
    before = request(vault, "alpha", date(2026, 11, 2), "a2@people.example")
    without_package = request(vault, "alpha", date(2026, 11, 2), "a3@people.example")
    complete_request(vault, in_period, package="alpha/access-one.sealed", actor="test",
                     at=datetime(2026, 11, 23, 15, tzinfo=UTC))
    complete_request(vault, before, package="alpha/access-two.sealed", actor="test",
                     at=datetime(2026, 11, 22, 23, tzinfo=UTC))
    complete_request(vault, without_package, package=None, actor="test", at=datetime(2026, 11, 23, 9, tzinfo=UTC))

    ready = ready_responses(vault, since=date(2026, 11, 23), until=TODAY)

    assert [(r.case_reference, r.outbox_path, r.closed_on) for r in ready] == [
        (case(vault, in_period), "alpha/access-one.sealed", date(2026, 11, 23))]
    [mail] = ready_mails(ready, contacts=privacy_contacts(vault), page_url=PAGE, today=TODAY)
    assert mail.to == "privacy@alpha.example" and mail.subject == f"Ready in the outbox: {case(vault, in_period)}"
    assert "alpha/access-one.sealed" in mail.text and "alpha/access-one.sealed" in mail.html
    record_ready_notices(vault, ready, actor="test", at=AT)
    assert ready_responses(vault, since=date(2026, 11, 23), until=TODAY) == []


def test_no_mail_is_made_for_a_controller_without_an_address(vault):
    controller_with_contact(vault, "charlie", "Director, Charlie Ltd")
    done = request(vault, "charlie", date(2026, 11, 2), "c1@people.example")
    complete_request(vault, done, package="charlie/access-one.sealed", actor="test",
                     at=datetime(2026, 11, 23, 15, tzinfo=UTC))
    ready = ready_responses(vault, since=date(2026, 11, 23), until=TODAY)
    assert len(ready) == 1
    assert ready_mails(ready, contacts=privacy_contacts(vault), page_url=PAGE, today=TODAY) == []

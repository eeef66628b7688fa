"""The caseload as staff run it: case references and days left, stopping the clock with its reason,
identity checks, extensions only within the first month, refusals with their letters, packages held
for review, complaints with their 30-day acknowledgement, and the dashboard's figures; every change
audited with the person acting."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from include.common.errors import InvalidInput, UnknownRecord
from include.policies.instructions import ReviewGates, instructions_in_code
from include.requests.caseload import case_line, caseload, dashboard, review_gates, timeline
from include.requests.complaints import acknowledge_complaint, close_complaint, complaints, register_complaint
from include.requests.decisions import extend, refuse, release
from include.requests.pipeline import RequestSettings, held_dir
from include.requests.register import (
    complete_request,
    find_request,
    get_request,
    hold_for_review,
    pause_request,
    register_request,
    requests_to_work,
    resume_request,
    start_request,
    verify_identity,
)
from include.vault.instructions import record_instructions

AT = datetime(2026, 11, 29, 12, tzinfo=UTC)
TODAY = AT.date()
EMAIL = "Grace.Hopper@Example.org"


def _instruct(vault, controller_id: str, *, prefix: str, review: ReviewGates | None = None) -> None:
    loaded = instructions_in_code(controller_id, {"enquiry": "until the enquiry is closed"}, given_on=date(2024, 1, 1),
                                  name=f"{controller_id.title()} Ltd", region="england-and-wales")
    content = loaded.content.model_copy(update={"case_prefix": prefix, "contact": "privacy@oak.example",
                                                "review": review or ReviewGates()})
    record_instructions(vault, [loaded.__class__(loaded.path, content, loaded.lines)], actor="test", at=AT)


@pytest.fixture
def register(vault):
    _instruct(vault, "oak", prefix="OAK")
    _instruct(vault, "elm", prefix="ELM", review=ReviewGates(identity=True, package=True))
    return vault


def _request(vault, controller_id="oak", received_on=date(2026, 11, 2), kind="access") -> str:
    return register_request(vault, controller_id=controller_id, kind=kind, received_on=received_on,
                            identities={"email": [EMAIL]}, actor="staff:ann", at=AT)


def _settings(tmp_path) -> RequestSettings:
    return RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")


def test_the_caseload_lists_every_kind_with_days_left_and_flags_the_overdue(register):
    overdue = _request(register, received_on=date(2026, 10, 1))
    erasure = _request(register, received_on=date(2026, 11, 20), kind="erase")
    lines = {line.request_id: line for line in caseload(register, today=TODAY)}
    assert lines[overdue].case_reference == "OAK-2026-0001" and lines[erasure].case_reference == "OAK-2026-0002"
    assert lines[overdue].overdue and lines[overdue].days_left == (lines[overdue].due_on - TODAY).days < 0
    assert not lines[erasure].overdue and lines[erasure].days_left == (date(2026, 12, 21) - TODAY).days  # 20 December is a Sunday
    assert [line.kind for line in caseload(register, today=TODAY, kind="erase")] == ["erase"]
    assert caseload(register, today=TODAY, controller_id="elm") == []
    with pytest.raises(InvalidInput, match="request kind 'bogus'"):
        caseload(register, today=TODAY, kind="bogus")
    with pytest.raises(InvalidInput, match="status 'stuck'"):
        caseload(register, today=TODAY, status="stuck")
    assert find_request(register, "oak-2026-0002").id == erasure
    assert case_line(register, overdue, today=TODAY) == lines[overdue]
    with pytest.raises(UnknownRecord):
        case_line(register, "no-such-request", today=TODAY)


def test_a_pause_names_its_reason_and_moves_the_due_date_by_the_paused_days(register):
    request_id = _request(register)
    due = get_request(register, request_id).due_on
    with pytest.raises(InvalidInput, match="one of identity, clarification, fee"):
        pause_request(register, request_id, on=date(2026, 11, 5), reason="holiday", actor="staff:ann", at=AT)
    paused = pause_request(register, request_id, on=date(2026, 11, 5), reason="fee", actor="staff:ann", at=AT)
    assert (paused.status, paused.pause_reason) == ("paused", "fee")
    line = caseload(register, today=date(2026, 11, 15))[0]
    assert line.status_label == "paused (fee)" and line.due_on > due  # the shown date moves while it waits
    assert request_id not in requests_to_work(register, received_before=TODAY)
    with pytest.raises(InvalidInput, match="already stopped"):
        pause_request(register, request_id, on=date(2026, 11, 6), reason="identity", actor="staff:ann", at=AT)
    resumed = resume_request(register, request_id, on=date(2026, 11, 15), actor="staff:bob", at=AT)
    assert resumed.status == "in_progress" and resumed.pause_reason is None
    assert resumed.paused_days == 10 and resumed.due_on > due
    events = [(e["actor"], e["action"], e["details"].get("reason")) for e in timeline(register, request_id)]
    assert ("staff:ann", "request.paused", "fee") in events and ("staff:bob", "request.resumed", None) in events


def test_a_controller_that_checks_identity_stops_the_clock_until_it_is_checked(register):
    request_id = _request(register, controller_id="elm", received_on=date(2026, 11, 2))
    waiting = get_request(register, request_id)
    assert (waiting.status, waiting.pause_reason, waiting.case_reference) == ("awaiting_id", "identity",
                                                                            "ELM-2026-0001")
    assert request_id not in requests_to_work(register, received_before=TODAY)
    verified = verify_identity(register, request_id, on=date(2026, 11, 9), actor="staff:ann", at=AT)
    assert verified.status == "received" and verified.paused_days == 7 and verified.due_on > waiting.due_on
    assert request_id in requests_to_work(register, received_before=TODAY)
    with pytest.raises(InvalidInput, match="not awaiting the requester's identity"):
        verify_identity(register, request_id, on=date(2026, 11, 9), actor="staff:ann", at=AT)
    assert review_gates(register, "elm").package and not review_gates(register, "oak").package


def test_an_extension_is_told_within_the_first_month_and_has_its_letter(register, tmp_path):
    settings = _settings(tmp_path)
    late, timely = _request(register, received_on=date(2026, 9, 1)), _request(register)
    with pytest.raises(InvalidInput, match="after the first deadline"):
        extend(register, late, settings, months=2, reason="Many systems to search", notified_on=TODAY,
               actor="staff:ann", at=AT)
    assert get_request(register, late).extension_months == 0
    letter = extend(register, timely, settings, months=2, reason="Many systems to search", notified_on=TODAY,
                    actor="staff:ann", at=AT)
    extended = get_request(register, timely)
    assert extended.extension_months == 2 and extended.due_on.month == 2
    text = letter.read_text()
    assert "OAK-2026-0002" in text and "Many systems to search" in text and "Information" in text
    assert EMAIL not in text and EMAIL.lower() not in text


def test_a_refusal_closes_the_request_and_its_letter_names_the_ico_and_a_court(register, tmp_path):
    request_id = _request(register)
    pause_request(register, request_id, on=date(2026, 11, 5), reason="clarification", actor="staff:ann", at=AT)
    with pytest.raises(InvalidInput, match="manifestly_unfounded"):
        refuse(register, request_id, _settings(tmp_path), reason="I don't like it", actor="staff:ann", at=AT)
    letter = refuse(register, request_id, _settings(tmp_path), reason="manifestly_excessive", actor="staff:ann", at=AT)
    refused = get_request(register, request_id)
    assert (refused.status, refused.refusal_reason, refused.pause_reason) == ("refused", "manifestly_excessive", None)
    assert letter == tmp_path / "outbox" / "oak" / "refusal-OAK-2026-0001.html"
    text = letter.read_text()
    assert "Information\nCommissioner's Office (ICO)" in text or "Information Commissioner" in " ".join(text.split())
    assert "court" in text and "manifestly excessive" in text
    assert [e["action"] for e in timeline(register, request_id)][-2:] == ["request.refused", "request.letter"]


def test_a_held_package_is_released_to_the_outbox_or_destroyed_by_a_refusal(register, tmp_path):
    settings = _settings(tmp_path)
    kept, rejected = (_request(register, controller_id="elm") for _ in range(2))
    for request_id in (kept, rejected):
        verify_identity(register, request_id, on=date(2026, 11, 3), actor="staff:ann", at=AT)
        start_request(register, request_id, subject_id=None, actor="workflow", at=AT)
        package = f"elm/access-{request_id}.zip"
        (held_dir(settings) / package).parent.mkdir(parents=True, exist_ok=True)
        (held_dir(settings) / package).write_bytes(b"sealed")
        hold_for_review(register, request_id, package=package, actor="workflow", at=AT)
    assert {line.status for line in caseload(register, today=TODAY)} == {"awaiting_review"}
    assert dashboard(register, today=TODAY)[0].awaiting_review == 2
    delivered = release(register, kept, settings, actor="staff:ann", at=AT)
    assert delivered == settings.outbox_dir / f"elm/access-{kept}.zip" and delivered.read_bytes() == b"sealed"
    assert get_request(register, kept).status == "completed"
    refuse(register, rejected, settings, reason="package_rejected", actor="staff:bob", at=AT)
    assert not (held_dir(settings) / f"elm/access-{rejected}.zip").exists()
    assert not (settings.outbox_dir / f"elm/access-{rejected}.zip").exists()
    with pytest.raises(InvalidInput, match="no package awaiting review"):
        release(register, rejected, settings, actor="staff:ann", at=AT)


def test_complaints_are_numbered_acknowledged_within_30_days_and_closed_with_an_outcome(register):
    request_id = _request(register)
    about = register_complaint(register, controller_id="oak", received_on=date(2026, 10, 1), request_id="OAK-2026-0001",
                               actor="staff:ann", at=AT)
    alone = register_complaint(register, controller_id="oak", received_on=date(2026, 11, 20), actor="staff:ann", at=AT)
    assert (about.reference, about.request_id, alone.reference) == ("OAK-2026-C0001", request_id, "OAK-2026-C0002")
    assert about.acknowledge_by == date(2026, 10, 31) and about.overdue and not alone.overdue
    assert alone.days_left == 21
    with pytest.raises(InvalidInput, match="not one of controller 'elm'"):
        register_complaint(register, controller_id="elm", received_on=TODAY, request_id=request_id, actor="a", at=AT)
    acknowledged = acknowledge_complaint(register, "oak-2026-c0002", on=TODAY, actor="staff:bob", at=AT)
    assert acknowledged.acknowledged_on == TODAY and acknowledged.days_left is None
    with pytest.raises(InvalidInput, match="was acknowledged"):
        acknowledge_complaint(register, alone.id, on=TODAY, actor="staff:bob", at=AT)
    closed = close_complaint(register, about.reference, on=TODAY, outcome="partly_upheld", actor="staff:bob", at=AT)
    assert (closed.outcome, closed.acknowledged_on, closed.is_open) == ("partly_upheld", TODAY, False)
    with pytest.raises(UnknownRecord):
        acknowledge_complaint(register, "OAK-2026-C0099", on=TODAY, actor="staff:bob", at=AT)
    assert [c.reference for c in complaints(register, today=TODAY, open_only=True)] == ["OAK-2026-C0002"]
    assert dashboard(register, today=TODAY)[1].complaints_to_acknowledge == 0
    assert {"complaint.received", "complaint.closed"} <= {e["action"] for e in timeline(register, request_id)}


def test_the_dashboard_counts_each_controllers_caseload(register):
    done = _request(register, received_on=date(2026, 10, 20))
    complete_request(register, done, package=None, actor="workflow", at=datetime(2026, 11, 10, tzinfo=UTC))
    _request(register, received_on=date(2026, 10, 1))  # overdue
    _request(register, received_on=date(2026, 11, 1))  # due on 1 December: this week
    figures = {f.controller_id: f for f in dashboard(register, today=TODAY)}
    oak = figures["oak"]
    assert (oak.open, oak.overdue, oak.due_this_week, oak.completed_90, oak.on_time_90) == (2, 1, 1, 1, 1)
    weeks = dict(oak.open_by_week)
    assert len(weeks) == 12 and weeks[date(2026, 11, 23)] == 2 and weeks[date(2026, 10, 12)] == 1
    assert figures["elm"].open == 0


def test_an_erasure_the_controller_confirms_first_is_not_planned_until_a_person_confirms_it(vault, tmp_path):
    from include.requests.pipeline import plan
    from include.requests.register import confirm_erasure

    _instruct(vault, "ash", prefix="ASH", review=ReviewGates(erasure=True))
    request_id = _request(vault, controller_id="ash", kind="erase")

    def stores_of(controller_id):  # reached only when the plan goes on to the stores
        raise LookupError(f"the stores of {controller_id} were reached")

    assert plan(vault, stores_of, [request_id], _settings(tmp_path), actor="workflow", at=AT) == []
    with pytest.raises(InvalidInput, match="not an erasure awaiting its confirmation"):
        confirm_erasure(vault, _request(vault, controller_id="ash"), actor="staff:ann", at=AT)  # an access request
    confirmed = confirm_erasure(vault, request_id, actor="staff:ann", at=AT)
    assert confirmed.status == "in_progress" and timeline(vault, request_id)[-1]["actor"] == "staff:ann"
    with pytest.raises(LookupError, match="the stores of ash were reached"):
        plan(vault, stores_of, [request_id], _settings(tmp_path), actor="workflow", at=AT)

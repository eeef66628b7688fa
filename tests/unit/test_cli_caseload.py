"""The staff's caseload from gdpr-admin: every request with its days left, each step of a request, and
complaints, on a real vault; each change is in the register and in the audit log, with the person acting."""

from __future__ import annotations

import getpass
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from include.common.paths import DEFAULT_INSTRUCTIONS_DIR
from include.common.reports import uk_date
from include.requests.complaints import complaints
from include.requests.deadlines import due_date
from include.requests.register import find_request, get_request, hold_for_review, start_request
from include.vault.schema import audit_event, case_reference, rights_request

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])

ACTOR = f"cli:{getpass.getuser()}"
EMAILS = ("ada@example.org", "bo@example.org", "cy@example.org")


@pytest.fixture
def desk(vault, vault_settings, tmp_path, monkeypatch, capsys):
    """gdpr-admin in this process on the test vault, with the shipped instructions but that Glencoe
    Outdoor checks a requester's identity first; each call returns what it printed (a usage error's
    status is argparse's)."""
    from include.admin.cli import main

    instructions = tmp_path / "instructions"
    shutil.copytree(DEFAULT_INSTRUCTIONS_DIR, instructions)
    with (instructions / "glencoe-outdoor.yaml").open("a") as glencoe:
        glencoe.write("review:\n  identity: true\n")
    for name, value in {"GDPR_VAULT_URL": vault_settings.vault_url, "GDPR_KEYSTORE_URL": vault_settings.keystore_url,
                        "GDPR_KEYRING_PATH": str(vault_settings.keyring_path),
                        "GDPR_OUTBOX_DIR": str(tmp_path / "outbox"), "GDPR_WORK_DIR": str(tmp_path / "work"),
                        "GDPR_INSTRUCTIONS_DIR": str(instructions)}.items():
        monkeypatch.setenv(name, value)

    def run(*args, expect=0):
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = exc.code
        printed = capsys.readouterr()
        assert status == expect, printed.out + printed.err
        return printed.out + printed.err

    run("instructions", "load")
    return run


def today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Sent:
    case: str  # its case reference, given at registration
    controller: str
    received_on: date
    kind: str


@pytest.fixture
def backlog(desk, vault, tmp_path) -> list[Sent]:
    """Three requests of three kinds: one received 45 days ago (overdue whatever the calendar), two
    recent, the last awaiting the requester's identity."""
    path = tmp_path / "backlog.csv"
    rows = [("fenland-cycles", "T-1", today() - timedelta(days=45), EMAILS[0], "access"),
            ("fenland-cycles", "T-2", today() - timedelta(days=3), EMAILS[1], "erase"),
            ("glencoe-outdoor", "T-3", today() - timedelta(days=1), EMAILS[2], "restrict")]
    path.write_text("controller,reference,received_on,email,kind\n"
                    + "".join(f"{c},{r},{d.isoformat()},{e},{k}\n" for c, r, d, e, k in rows))
    desk("request", "import", str(path))
    with vault.engine.connect() as conn:
        cases = dict(conn.execute(sa.select(rights_request.c.reference, case_reference.c.reference).join(
            case_reference, case_reference.c.request_id == rights_request.c.id)).all())
    return [Sent(cases[reference], controller, received_on, kind)
            for controller, reference, received_on, _, kind in rows]


def table(printed: str) -> list[dict[str, str]]:
    """The rows of a printed table by its headings (cells are two or more spaces apart; the line after
    the table is its summary)."""
    header, *lines, _summary = printed.splitlines()
    headings = [*re.split(r"\s{2,}", header), "flag"]
    return [dict(zip(headings, re.split(r"\s{2,}", line), strict=False)) for line in lines]


def last_seq(vault) -> int:
    with vault.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(audit_event.c.seq))).scalar() or 0


def events_since(vault, seq: int) -> list:
    with vault.engine.connect() as conn:
        return conn.execute(sa.select(audit_event).where(audit_event.c.seq > seq).order_by(audit_event.c.seq)).all()


def test_the_caseload_lists_every_kind_with_days_left_and_the_overdue_flagged(desk, backlog):
    printed = desk("request", "list")
    assert re.split(r"\s{2,}", printed.splitlines()[0]) == ["Case", "Controller", "Kind", "Status", "Received",
                                                            "Due", "Days left"]
    rows = table(printed)
    assert [(row["Case"], row["Controller"], row["Kind"]) for row in rows] == [
        (sent.case, sent.controller, sent.kind) for sent in backlog]
    assert [row["Status"] for row in rows] == ["received", "received", "awaiting identity"]
    for row, sent in zip(rows, backlog, strict=True):
        assert row["Received"] == uk_date(sent.received_on)
        due = datetime.strptime(row["Due"], "%d %B %Y").date()
        assert int(row["Days left"]) == (due - today()).days
    # A month and a bank holiday weekend are at most 34 days; the identity's clock has not started.
    assert [row.get("flag") for row in rows] == ["OVERDUE", None, None] and int(rows[0]["Days left"]) < 0
    assert printed.splitlines()[-1] == "3 requests, 1 overdue"
    assert not any(email in printed for email in EMAILS)

    assert [row["Case"] for row in table(desk("request", "list", "--kind", "erase"))] == [backlog[1].case]
    assert [row["Case"] for row in table(desk("request", "list", "--controller", "glencoe-outdoor"))] == [
        backlog[2].case]
    assert [row["Case"] for row in table(desk("request", "list", "--status", "awaiting_id", "--open"))] == [
        backlog[2].case]
    assert table(desk("request", "list", "--status", "completed")) == []
    assert "invalid choice: 'eras'" in desk("request", "list", "--kind", "eras", expect=2)
    assert "invalid choice: 'late'" in desk("request", "list", "--status", "late", expect=2)


def test_a_request_is_shown_with_its_timeline_and_its_identities_only_when_asked(desk, backlog, vault):
    case = backlog[1].case
    request = find_request(vault, case)
    shown = desk("request", "show", case)
    assert shown.startswith(f"Case {case} (request {request.id})\n")
    facts = dict(re.findall(r"\n  ([A-Z][^:]+): +(.+)", shown))
    assert (facts["Controller"], facts["Kind"], facts["Status"]) == ("fenland-cycles", "erase", "received")
    assert (facts["Received"], facts["Possible matches"]) == (uk_date(backlog[1].received_on), "0")
    assert facts["Due"] == f"{uk_date(request.due_on)}: {(request.due_on - today()).days} days left"
    assert re.search(rf"\nTimeline\n  {uk_date(today())} \d\d:\d\d  {ACTOR}  request\.received  \(.*kind erase",
                     shown)
    assert not any(email in shown for email in EMAILS)
    assert desk("request", "show", request.id) == shown  # by its id, the same
    with_identities = desk("request", "show", case.lower(), "--identities")
    assert with_identities.startswith(shown) and re.search(r"\n  email +bo@example\.org\n", with_identities)
    assert "identities_shown" not in shown  # who looked at them is audited, from then on
    assert re.search(rf"{ACTOR}  request\.identities_shown  \(kinds email\)", desk("request", "show", case))
    assert "request FENLAND-1999-0099 does not exist" in desk("request", "show", "FENLAND-1999-0099", expect=1)


def test_each_step_of_a_request_changes_the_register_and_is_audited(desk, backlog, vault, tmp_path):
    case, first = backlog[1].case, backlog[0].case
    request = find_request(vault, case)
    start = last_seq(vault)
    received_on = backlog[1].received_on

    assert "clock stopped" in desk("request", "pause", case, "--reason", "clarification", "--on",
                                   received_on.isoformat())
    paused = get_request(vault, request.id)
    assert (paused.status, paused.pause_reason) == ("paused", "clarification")
    assert table(desk("request", "list", "--kind", "erase"))[0]["Status"] == "paused (clarification)"
    assert "invalid choice: 'holiday'" in desk("request", "pause", case, "--reason", "holiday", expect=2)

    desk("request", "resume", case, "--on", (received_on + timedelta(days=2)).isoformat())
    resumed = get_request(vault, request.id)
    assert (resumed.status, resumed.pause_reason, resumed.paused_days) == ("in_progress", None, 2)
    assert resumed.due_on == due_date(request.clock_start, "england-and-wales", paused_days=2)

    extended = desk("request", "extend", case, "--months", "2", "--reason", "Many systems to search",
                    "--told-on", received_on.isoformat())
    letter = tmp_path / "outbox" / "fenland-cycles" / f"extension-{case}.html"
    assert f"extension letter: {letter}\n" in extended and "Many systems to search" in letter.read_text()
    assert get_request(vault, request.id).extension_months == 2
    assert "invalid choice: 3" in desk("request", "extend", case, "--months", "3", "--reason", "more",
                                       "--told-on", received_on.isoformat(), expect=2)

    refused = desk("request", "refuse", case, "--reason", "manifestly_excessive")
    letter = tmp_path / "outbox" / "fenland-cycles" / f"refusal-{case}.html"
    assert f"refusal letter: {letter}\n" in refused
    text = " ".join(letter.read_text().split())
    assert "Information Commissioner's Office (ICO)" in text and "court" in text
    assert not any(email in text for email in EMAILS)
    assert (get_request(vault, request.id).status, get_request(vault, request.id).refusal_reason) == (
        "refused", "manifestly_excessive")
    assert "is already refused" in desk("request", "pause", case, "--reason", "fee", expect=1)
    assert "nothing changed" in desk("request", "close", case, "--status", "completed")

    assert "closed as completed" in desk("request", "close", first, "--status", "completed")
    assert find_request(vault, first).status == "completed"
    [answered] = table(desk("request", "list", "--kind", "access"))
    assert (answered["Status"], answered["Days left"], answered["flag"]) == ("completed", "-", "answered late")

    events = events_since(vault, start)
    assert [event.action for event in events] == ["request.paused", "request.resumed", "request.extended",
                                                  "request.letter", "request.refused", "request.letter",
                                                  "request.completed"]
    assert {event.actor for event in events} == {ACTOR}
    assert [json.loads(event.details)["request"] for event in events] == [request.id] * 6 + [
        find_request(vault, first).id]
    shown = desk("request", "show", case)
    assert "Refused because:" in shown and "manifestly excessive" in shown
    assert [re.split(r"\s{2,}", line.strip())[2] for line in shown.split("Timeline\n")[1].splitlines()] == [
        "request.received", "request.paused", "request.resumed", "request.extended", "request.letter",
        "request.refused", "request.letter"]
    assert "audit log intact" in desk("audit", "verify")


def test_an_extension_told_after_the_first_deadline_is_refused_and_changes_nothing(desk, backlog, vault):
    case = backlog[0].case
    request = find_request(vault, case)
    start = last_seq(vault)
    refused = desk("request", "extend", case, "--months", "1", "--reason", "complex",
                   "--told-on", today().isoformat(), expect=1)
    assert refused.startswith("error: ") and "after the first deadline" in refused
    assert get_request(vault, request.id).due_on == request.due_on and events_since(vault, start) == []
    assert "is not a date" in desk("request", "extend", case, "--months", "1", "--reason", "complex",
                                   "--told-on", "last Tuesday", expect=2)


def test_an_identity_verified_starts_the_clock_and_a_held_package_is_released(desk, backlog, vault, tmp_path):
    case = backlog[2].case
    request = find_request(vault, case)
    start = last_seq(vault)
    verified = desk("request", "verify", case, "--on", today().isoformat())
    now = get_request(vault, request.id)
    assert (now.status, now.pause_reason, now.paused_days) == ("received", None, 1)
    assert verified == f"{case}: identity verified on {uk_date(today())}; the clock runs, due {uk_date(now.due_on)}\n"
    assert "not awaiting the requester's identity" in desk("request", "verify", case, expect=1)

    package = f"glencoe-outdoor/access-{request.id}.gdprpkg"
    (tmp_path / "work" / "held" / package).parent.mkdir(parents=True)
    (tmp_path / "work" / "held" / package).write_bytes(b"sealed")
    start_request(vault, request.id, subject_id=None, actor="workflow", at=datetime.now(UTC))
    hold_for_review(vault, request.id, package=package, actor="workflow", at=datetime.now(UTC))
    assert table(desk("request", "list", "--status", "awaiting_review"))[0]["Case"] == case
    released = desk("request", "release", case)
    assert f"package: {tmp_path / 'outbox' / package}\n" in released
    assert (tmp_path / "outbox" / package).read_bytes() == b"sealed"
    assert get_request(vault, request.id).status == "completed"
    assert "no package awaiting review" in desk("request", "release", case, expect=1)
    actions = [(event.action, event.actor) for event in events_since(vault, start)]
    assert actions == [("request.identity_verified", ACTOR), ("request.in_progress", "workflow"),
                       ("request.awaiting_review", "workflow"), ("request.completed", ACTOR)]


def test_complaints_added_acknowledged_closed_and_listed(desk, backlog, vault):
    start = last_seq(vault)
    added = desk("complaint", "add", "--controller", "fenland-cycles", "--request", backlog[0].case,
                 "--received-on", today().isoformat())
    match = re.fullmatch(r"complaint (FENLAND-\d{4}-C0001) registered: acknowledge it by (.+)\n", added)
    reference = match[1]
    assert match[2] == uk_date(today() + timedelta(days=30))
    other = desk("complaint", "add", "--controller", "glencoe-outdoor", "--received-on",
                 (today() - timedelta(days=40)).isoformat()).split()[1]
    assert "is not one of controller 'glencoe-outdoor'" in desk(
        "complaint", "add", "--controller", "glencoe-outdoor", "--request", backlog[0].case, expect=1)

    printed = desk("complaint", "list")
    rows = table(printed)
    assert [(row["Complaint"], row["Case"], row["Status"]) for row in rows] == [
        (other, "-", "to acknowledge"), (reference, backlog[0].case, "to acknowledge")]
    assert (rows[1]["Days left"], rows[1].get("flag")) == ("30", None)
    assert (rows[0]["Days left"], rows[0].get("flag")) == ("-10", "OVERDUE")
    assert printed.splitlines()[-1] == "2 complaints, 2 to acknowledge, 1 overdue"

    assert f"acknowledged on {uk_date(today())}" in desk("complaint", "acknowledge", reference.lower())
    assert "was acknowledged on" in desk("complaint", "acknowledge", reference, expect=1)
    assert f"closed on {uk_date(today())}: partly upheld" in desk("complaint", "close", reference, "--outcome",
                                                                  "partly_upheld")
    assert "invalid choice: 'maybe'" in desk("complaint", "close", other, "--outcome", "maybe", expect=2)
    assert [row["Complaint"] for row in table(desk("complaint", "list", "--open"))] == [other]
    [closed] = table(desk("complaint", "list", "--controller", "fenland-cycles"))
    assert (closed["Status"], closed["Days left"]) == (f"closed {uk_date(today())}, partly upheld", "-")

    [stored] = [item for item in complaints(vault, today=today()) if item.reference == reference]
    assert (stored.acknowledged_on, stored.closed_on, stored.outcome) == (today(), today(), "partly_upheld")
    events = events_since(vault, start)
    assert [event.action for event in events] == ["complaint.received", "complaint.received",
                                                  "complaint.acknowledged", "complaint.closed"]
    assert {event.actor for event in events} == {ACTOR}
    assert "complaint NOPE-2026-C0001 does not exist" in desk("complaint", "acknowledge", "NOPE-2026-C0001",
                                                              expect=1)

"""`privacy_digest` end to end (dag.test): a real SMTP server (aiosmtpd) on 127.0.0.1 behind the connection
`smtp_default`, a vault on each backend with requests of two controllers, one of them the canary's. Every
mail is checked for its recipients, its counts and case references, and for the canary's values."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from include.demo.shop import SHOP_CONTROLLER
from include.requests.complaints import register_complaint
from include.requests.register import complete_request, get_request, hold_for_review, register_request
from include.vault.store import NewRecord, Vault
from tests.dags.conftest import task_states, xcom_value
from tests.dags.test_canary import CANARY
from tests.unit.test_digest import controller_with_contact

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)  # the digest of Tuesday 24 November; the interval from the 23rd
AT = datetime(2026, 11, 1, 9, tzinfo=UTC)
SENDER = "digest@agency.example"
AGENCY = "privacy@agency.example"
OTHER = "glencoe-outdoor"  # the second controller; SHOP_CONTROLLER (fenland-cycles) has the canary
UNADDRESSED = "lagan-bakery"  # a controller whose contact has no email address


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def parts(self) -> dict[str, str]:
        """The decoded text of each part, by its type."""
        return {part.get_content_type(): part.get_content() for part in self.message.walk()
                if part.get_content_maintype() == "text"}

    @property
    def text(self) -> str:
        return self.parts()["text/plain"]


class Inbox:
    """aiosmtpd's handler: keeps each message as it arrived."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [mail for mail in self.received if mail.recipients == (address,)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mail_server(monkeypatch):
    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"from_email": SENDER, "disable_tls": True, "disable_ssl": True, "retry_limit": 0}}))
    monkeypatch.setenv("GDPR_PRIVACY_MAILBOX", AGENCY)
    yield inbox
    server.stop()


def requested(vault: Vault, controller_id: str, received_on: date, **identities: str) -> str:
    request_id = register_request(vault, controller_id=controller_id, kind="access", received_on=received_on,
                                  identities={kind: [value] for kind, value in identities.items()}, actor="test",
                                  at=AT)
    return request_id


@pytest.fixture
def caseload(vault, vault_connection, mail_server):
    """The canary a client of the shop controller, with an access request awaiting review and one completed
    the day before the digest; the shop's requests due soon and overdue; the other controller's overdue
    request and a complaint to acknowledge; a request of a controller whose contact has no address."""
    shop_contact = "Managing Director, Fenland Cycles Ltd, 3 Market Street, Ely CB7 4LS; privacy@fenland-cycles.example"
    controller_with_contact(vault, SHOP_CONTROLLER, shop_contact, name="Fenland Cycles Ltd")
    controller_with_contact(vault, OTHER, "Jo Director <dpo@glencoe-outdoor.example>", name="Glencoe Outdoor Ltd")
    controller_with_contact(vault, UNADDRESSED, "Owner, Lagan Bakery, 2 Bridge Street, Belfast")
    vault.add_records([NewRecord(
        controller_id=SHOP_CONTROLLER, category="client", purpose="client processing", source="web shop",
        role="client", relates_to=date(2026, 6, 1),
        fields={"email": CANARY["email"], "phone": CANARY["phone"], "name": CANARY["name"]})], actor="test")
    canary = {"email": CANARY["email"], "phone": CANARY["phone_written"], "ip": CANARY["ip"]}
    ids = {
        "urgent": requested(vault, SHOP_CONTROLLER, date(2026, 10, 26), email="one@people.example"),
        "due_soon": requested(vault, SHOP_CONTROLLER, date(2026, 11, 1), email="two@people.example"),
        "overdue": requested(vault, SHOP_CONTROLLER, date(2026, 10, 20), email="three@people.example"),
        "canary_review": requested(vault, SHOP_CONTROLLER, date(2026, 11, 2), **canary),
        "canary_done": requested(vault, SHOP_CONTROLLER, date(2026, 11, 3), **canary),
        "other_overdue": requested(vault, OTHER, date(2026, 10, 16), email="four@people.example"),
        "unaddressed_due": requested(vault, UNADDRESSED, date(2026, 11, 1), email="five@people.example"),
    }
    hold_for_review(vault, ids["canary_review"], package=f"{SHOP_CONTROLLER}/access-review.sealed", actor="test",
                    at=AT)
    complete_request(vault, ids["canary_done"], package=f"{SHOP_CONTROLLER}/access-{ids['canary_done']}.sealed",
                     actor="test", at=datetime(2026, 11, 23, 14, tzinfo=UTC))
    complaint = register_complaint(vault, controller_id=OTHER, received_on=date(2026, 11, 1), actor="test", at=AT)
    cases = {name: get_request(vault, request_id).case_reference for name, request_id in ids.items()}
    vault.dispose()
    return cases, complaint.reference, ids["canary_done"]


@pytest.mark.airflow
def test_the_digest_and_the_ready_notice_reach_their_recipients_without_a_personal_value(
        dagbag, caseload, mail_server, capfd):
    cases, complaint, done_id = caseload
    run = dagbag.get_dag("privacy_digest").test(logical_date=RUN_DAY)
    assert run.state == "success", task_states(run.run_id)
    logged = capfd.readouterr().out

    inbox = mail_server
    assert sorted(mail.recipients for mail in inbox.received) == [
        ("dpo@glencoe-outdoor.example",), (AGENCY,), ("privacy@fenland-cycles.example",),
        ("privacy@fenland-cycles.example",)]
    assert {mail.sender for mail in inbox.received} == {SENDER}
    shop_digest, notice = sorted(inbox.to("privacy@fenland-cycles.example"),
                                 key=lambda mail: mail.message["Subject"])
    [other_digest] = inbox.to("dpo@glencoe-outdoor.example")
    [agency_digest] = inbox.to(AGENCY)

    assert shop_digest.message["Subject"] == (
        "Privacy requests digest, 24 November 2026: Fenland Cycles Ltd (2 urgent or overdue)")
    text = shop_digest.text
    assert "Due within 7 days: 2" in text and "Overdue: 1" in text
    assert "Awaiting review: 1" in text
    assert f"URGENT  {cases['urgent']}" in text and cases["due_soon"] in text and cases["overdue"] in text
    assert cases["canary_review"] in text and cases["other_overdue"] not in text and complaint not in text
    assert "Overdue: 1" in other_digest.text and cases["other_overdue"] in other_digest.text
    assert f"{complaint}  received 1 November 2026, acknowledge by 1 December 2026" in other_digest.text
    assert cases["urgent"] not in other_digest.text
    assert all(reference in agency_digest.text for reference in
               [cases[name] for name in ("urgent", "due_soon", "overdue", "canary_review", "other_overdue",
                                          "unaddressed_due")])
    assert complaint in agency_digest.text
    assert notice.message["Subject"] == f"Ready in the outbox: {cases['canary_done']}"
    assert f"{SHOP_CONTROLLER}/access-{done_id}.sealed" in notice.text
    assert all("http://localhost:8080/privacy-requests/" in mail.text for mail in inbox.received)

    for mail in inbox.received:
        decoded = " ".join(mail.parts().values()) + " " + str(mail.message)
        raw = mail.raw.decode("latin-1")
        found = {value for value in CANARY.values() if value in raw or value in decoded}
        assert not found, f"{mail.message['Subject']}: {found}"
    # The warnings: urgent and overdue requests by controller, and the controller left unmailed.
    assert (f"{SHOP_CONTROLLER}: 1 request due within 3 days ({cases['urgent']}), 1 overdue ({cases['overdue']})"
            in logged)
    assert f"{OTHER}: 0 requests due within 3 days, 1 overdue ({cases['other_overdue']})" in logged
    assert f"Controller {UNADDRESSED}: its contact (the instruction file's `contact`) has no email address" in logged
    assert xcom_value(run.run_id, "privacy_digest", "mail_daily_digest") == {
        "day": "2026-11-24", "mails": 3, "urgent": 1, "overdue": 2}


@pytest.mark.airflow
def test_a_second_run_for_the_day_tells_no_one_twice_that_a_response_is_ready(dagbag, caseload, mail_server):
    cases, _, _ = caseload
    first = dagbag.get_dag("privacy_digest").test(logical_date=RUN_DAY)
    again = dagbag.get_dag("privacy_digest").test(logical_date=RUN_DAY.replace(hour=11))
    assert first.state == again.state == "success", task_states(again.run_id)

    notices = [mail for mail in mail_server.received if mail.message["Subject"].startswith("Ready in the outbox")]
    assert len(notices) == 1 and cases["canary_done"] in notices[0].text
    assert xcom_value(again.run_id, "privacy_digest", "mail_ready_notices")["cases"] == []


@pytest.mark.airflow
def test_without_a_mail_server_the_mails_are_written_to_the_reports_folder(dagbag, caseload, monkeypatch,
                                                                          tmp_path):
    """One machine with no mail server (`make run`): the run is green and each mail is a file to open."""
    cases, _, _ = caseload
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
    monkeypatch.setenv("GDPR_REPORTS_DIR", str(tmp_path / "reports"))
    run = dagbag.get_dag("privacy_digest").test(logical_date=RUN_DAY)
    assert run.state == "success", task_states(run.run_id)
    written = sorted((tmp_path / "reports" / "mail").glob("*.eml"))
    assert len(written) == 4  # three digests and the notice
    mails = [message_from_bytes(path.read_bytes(), policy=policy.default) for path in written]
    assert sorted(mail["To"] for mail in mails) == sorted(
        ["dpo@glencoe-outdoor.example", AGENCY, "privacy@fenland-cycles.example", "privacy@fenland-cycles.example"])
    assert any(cases["urgent"] in mail.get_body(("plain",)).get_content() for mail in mails)
    assert not any(value in path.read_text(errors="replace") for path in written for value in CANARY.values())

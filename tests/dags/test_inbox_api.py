"""The privacy requests page (plugins/gdpr/inbox) behind Airflow's login.

First on the app itself, through FastAPI's TestClient with tokens from Airflow's auth manager: nobody
without a login gets anything; a viewer reads the caseload but sees no identities and changes nothing;
a caseworker's every action changes the register through the core and is audited with their name.
Then on a real `airflow api-server` (the plugin as Airflow loads it, one start for the module): the
page refuses anonymous calls, a user who logs in sees the demo's requests, and a form sent from
another site is refused.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from include.common.clock import utcnow
from include.common.settings import VaultSettings
from include.demo.people import demo_people
from include.requests.caseload import caseload, timeline
from include.requests.complaints import complaints, register_complaint
from include.requests.deadlines import due_date
from include.requests.pipeline import RequestSettings, held_dir
from include.requests.register import get_request, hold_for_review, record_possible_matches, register_request
from include.stores.base import PossibleMatch
from include.vault.store import Vault
from tests.airflow_server import Airflow, connection_json, demo_vault_in
from tests.conftest import PROJECT_ROOT
from tests.dags.conftest import ACCESS_FORM, task_states
from tests.helpers import client_in_both

CONTROLLER = "fenland-cycles"  # England and Wales
REGION = "england-and-wales"
# Airflow's Simple auth manager users: who may act (role "user") and who may only read ("viewer").
ROLES = {"caseworker": "user", "auditor": "viewer"}
PASSWORDS = {"caseworker": "Caseworker-Pass-2026", "auditor": "Auditor-Pass-2026"}
PERSON = "maud.gonne@example.org"  # the identity a registered request was made with


@pytest.fixture
def backend() -> str:
    return "sqlite"


def register(vault: Vault, *, days_ago: int, email: str = PERSON) -> str:
    """A new access request received days_ago days before today; its case reference."""
    today = utcnow().date()
    request_id = register_request(vault, controller_id=CONTROLLER, kind="access",
                                  received_on=today - timedelta(days=days_ago), identities={"email": [email]},
                                  actor="test", at=utcnow())
    case = get_request(vault, request_id).case_reference
    assert case
    return case


def words(html: str) -> str:
    """The text of HTML as read: tags dropped, entities decoded, every run of spaces and line breaks one space."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def by_case(vault: Vault, case: str):
    [line] = [line for line in caseload(vault, today=utcnow().date()) if line.case_reference == case]
    return line


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audited(vault: Vault, request_id: str) -> list[tuple[str, str]]:
    """The request's audited actions and who did each."""
    return [(event["action"], event["actor"]) for event in timeline(vault, request_id)]


def last_event(vault: Vault, request_id: str) -> dict:
    return timeline(vault, request_id)[-1]


@dataclass
class Desk:
    """The app under TestClient, the vault behind it, and each user's Authorization header."""

    client: TestClient
    vault: Vault
    settings: RequestSettings
    headers: dict[str, dict[str, str]]

    def post(self, path: str, user: str = "caseworker", **form: str) -> httpx.Response:
        return self.client.post(path, data=form, headers=self.headers[user], follow_redirects=False)

    def get(self, path: str, user: str = "caseworker") -> httpx.Response:
        return self.client.get(path, headers={**self.headers[user], "Accept": "text/html"})


@pytest.fixture
def desk(demo_vault, vault_connection, airflow_db, tmp_path, monkeypatch) -> Desk:
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from gdpr.inbox.app import create_app

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                       ",".join(f"{user}:{role}" for user, role in ROLES.items()))
    for name, sub in (("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work")):
        monkeypatch.setenv(f"GDPR_{name}", str(tmp_path / sub))
    manager = init_auth_manager()
    headers = {user: bearer(manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role)))
               for user, role in ROLES.items()}
    settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")
    return Desk(TestClient(create_app()), demo_vault, settings, headers)


def test_nobody_without_a_login_gets_the_page_its_api_or_its_actions(desk):
    case = register(desk.vault, days_ago=3)
    calls = [("GET", "/"), ("GET", "/api/caseload"), ("GET", "/dashboard"), ("GET", "/complaints"),
             ("GET", f"/requests/{case}"), ("POST", f"/requests/{case}/pause"), ("POST", "/complaints")]
    for method, path in calls:
        anonymous = desk.client.request(method, path, data={"reason": "fee", "on": "2026-11-01"})
        assert anonymous.status_code == 401, (method, path)
        forged = desk.client.request(method, path, headers={"Authorization": "Bearer not-a-token"})
        assert forged.status_code == 403, (method, path)
    assert by_case(desk.vault, case).status == "received"
    page = desk.client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "Log in to Airflow" in page.text and "/api/v2/auth/login" in page.text


def test_the_list_shows_the_requests_without_a_personal_value(desk):
    case = register(desk.vault, days_ago=3)
    page = desk.get("/")
    assert page.status_code == 200
    expected = caseload(desk.vault, today=utcnow().date(), open_only=True)
    assert expected and all(line.case_reference in page.text for line in expected)
    overdue = [line for line in expected if line.overdue]
    assert overdue, "the demo's requests, received in October 2026, are overdue"
    assert page.text.count('<tr class="overdue"') == len(overdue)
    assert f"{-overdue[0].days_left} days overdue" in page.text
    listed = desk.client.get("/api/caseload", headers=desk.headers["auditor"]).json()
    assert {row["case_reference"] for row in listed} == {line.case_reference for line in expected}
    people = [PERSON, *(p.email for p in demo_people()), *(p.name for p in demo_people())]
    for text in (page.text, json.dumps(listed), desk.get("/dashboard").text, desk.get("/complaints").text):
        assert not [value for value in people if value in text]
    assert PERSON not in desk.get(f"/requests/{case}").text  # shown only when asked for, and audited
    assert PERSON in desk.get(f"/requests/{case}?identities=show").text  # on its own page, for staff who act
    shown = last_event(desk.vault, by_case(desk.vault, case).request_id)
    assert (shown["action"], shown["actor"], shown["details"]["kinds"]) == ("request.identities_shown",
                                                                           "staff:caseworker", ["email"])


def test_the_filters_narrow_the_list_and_a_wrong_one_is_told_in_plain_words(desk):
    case = register(desk.vault, days_ago=3)
    paused = desk.post(f"/requests/{case}/pause", reason="fee", on=utcnow().date().isoformat())
    assert paused.status_code == 303
    only = desk.get("/?status=paused").text
    assert case in only and "paused (fee)" in only
    assert not [line for line in caseload(desk.vault, today=utcnow().date(), open_only=True)
                if line.case_reference != case and line.case_reference in only]
    assert case not in desk.get("/?controller=jigowatt").text and case in desk.get(f"/?controller={CONTROLLER}").text
    assert case not in desk.get("/?kind=erase").text
    wrong = desk.get("/?status=lost")
    assert wrong.status_code == 400 and "status 'lost' is not one of" in words(wrong.text)
    assert "Traceback" not in wrong.text


def test_a_viewer_reads_but_sees_no_identities_and_changes_nothing(desk):
    case = register(desk.vault, days_ago=3)
    held = PossibleMatch("fenland-shop", "customers", "4711", "reached only through a phone another owner shares")
    record_possible_matches(desk.vault, by_case(desk.vault, case).request_id, held.store, [held], at=utcnow())
    page = desk.get(f"/requests/{case}", user="auditor")
    assert page.status_code == 200 and case in page.text
    assert "fenland-shop customers 4711 reached only through a phone another owner shares" in words(page.text)
    assert PERSON not in page.text and "<form method=\"post\"" not in page.text
    assert PERSON not in desk.get(f"/requests/{case}?identities=show", user="auditor").text
    refused = desk.post(f"/requests/{case}/pause", user="auditor", reason="fee", on=utcnow().date().isoformat())
    assert refused.status_code == 403
    assert by_case(desk.vault, case).status == "received"


def test_pausing_and_resuming_moves_the_due_date_by_the_paused_days_audited_with_the_name(desk):
    case = register(desk.vault, days_ago=10)
    line = by_case(desk.vault, case)
    today = utcnow().date()
    assert desk.post(f"/requests/{case}/pause", reason="clarification",
                     on=(today - timedelta(days=4)).isoformat()).status_code == 303
    assert by_case(desk.vault, case).status_label == "paused (clarification)"
    assert last_event(desk.vault, line.request_id)["actor"] == "staff:caseworker"
    resumed = desk.post(f"/requests/{case}/resume", on=today.isoformat())
    assert resumed.status_code == 303 and resumed.headers["location"].endswith(f"/requests/{case}?done=resume")
    request = get_request(desk.vault, line.request_id)
    assert request.paused_days == 4
    assert request.due_on == due_date(request.clock_start, REGION, paused_days=4) > line.due_on
    event = last_event(desk.vault, line.request_id)
    assert (event["action"], event["actor"]) == ("request.resumed", "staff:caseworker")
    shown = desk.get(f"/requests/{case}?done=resume").text
    assert "the paused days moved its due date on" in shown


def test_an_extension_is_refused_after_the_first_month_with_the_reason_shown_and_accepted_within(desk):
    late = register(desk.vault, days_ago=40)
    today = utcnow().date().isoformat()
    refused = desk.post(f"/requests/{late}/extend", months="2", reason="complex", notified_on=today)
    assert refused.status_code == 400 and "after the first deadline" in refused.text and "Traceback" not in refused.text
    assert get_request(desk.vault, by_case(desk.vault, late).request_id).extension_months == 0
    within = register(desk.vault, days_ago=5)
    line = by_case(desk.vault, within)
    accepted = desk.post(f"/requests/{within}/extend", months="2", reason="complex", notified_on=today)
    assert accepted.status_code == 303
    request = get_request(desk.vault, line.request_id)
    assert request.extension_months == 2 and request.due_on == due_date(request.clock_start, REGION, extension_months=2)
    assert (desk.settings.outbox_dir / CONTROLLER / f"extension-{within}.html").exists()
    assert ("request.extended", "staff:caseworker") in audited(desk.vault, line.request_id)


def test_a_refusal_writes_the_letter_naming_the_ico_and_is_audited(desk):
    case = register(desk.vault, days_ago=5)
    line = by_case(desk.vault, case)
    assert desk.post(f"/requests/{case}/refuse", reason="manifestly_excessive").status_code == 303
    request = get_request(desk.vault, line.request_id)
    assert (request.status, request.refusal_reason) == ("refused", "manifestly_excessive")
    letter = desk.settings.outbox_dir / CONTROLLER / f"refusal-{case}.html"
    assert "Information Commissioner's Office (ICO)" in words(letter.read_text())
    assert ("request.refused", "staff:caseworker") in audited(desk.vault, request.id)
    page = desk.get(f"/requests/{case}").text
    assert f"{CONTROLLER}/refusal-{case}.html" in page
    download = desk.client.get(f"/requests/{case}/files/{CONTROLLER}/refusal-{case}.html",
                               headers=desk.headers["caseworker"])
    assert download.status_code == 200 and download.text == letter.read_text()
    assert desk.client.get(f"/requests/{case}/files/{CONTROLLER}/refusal-{case}.html",
                           headers=desk.headers["auditor"]).status_code == 403
    elsewhere = desk.client.get(f"/requests/{case}/files/{CONTROLLER}%2F..%2F..%2Fkeyring%2Fkeyring.json",
                                headers=desk.headers["caseworker"])
    assert elsewhere.status_code == 404
    unknown = desk.post(f"/requests/{register(desk.vault, days_ago=1)}/refuse", reason="because I say so")
    assert unknown.status_code == 400 and "Choose the reason for the refusal." in unknown.text


def held_package(desk: Desk, case: str) -> Path:
    """The request answered and its package held back for review, as the workflow leaves it."""
    request_id = by_case(desk.vault, case).request_id
    package = f"{CONTROLLER}/access-{request_id}.gdprpkg"
    held = held_dir(desk.settings) / package
    held.parent.mkdir(parents=True, exist_ok=True)
    held.write_bytes(b"sealed package")
    hold_for_review(desk.vault, request_id, package=package, actor="test", at=utcnow())
    return held


def test_a_package_awaiting_review_is_released_or_rejected_by_a_person(desk):
    approved, rejected = register(desk.vault, days_ago=6), register(desk.vault, days_ago=6)
    held = held_package(desk, approved)
    assert desk.post(f"/requests/{approved}/release").status_code == 303
    request = get_request(desk.vault, by_case(desk.vault, approved).request_id)
    assert request.status == "completed" and not held.exists()
    assert (desk.settings.outbox_dir / request.package).read_bytes() == b"sealed package"
    assert ("request.completed", "staff:caseworker") in audited(desk.vault, request.id)
    held = held_package(desk, rejected)
    assert desk.post(f"/requests/{rejected}/reject").status_code == 303
    request = get_request(desk.vault, by_case(desk.vault, rejected).request_id)
    assert (request.status, request.refusal_reason) == ("refused", "package_rejected") and not held.exists()
    again = desk.post(f"/requests/{approved}/release")
    assert again.status_code == 400 and "has no package awaiting review" in again.text


def test_identity_verification_and_closing_are_audited_with_the_name(desk):
    case = register(desk.vault, days_ago=8)
    request_id = by_case(desk.vault, case).request_id
    today = utcnow().date()
    assert desk.post(f"/requests/{case}/pause", reason="identity", on=(today - timedelta(days=2)).isoformat()
                     ).status_code == 303
    assert desk.post(f"/requests/{case}/verify", on=today.isoformat()).status_code == 303
    request = get_request(desk.vault, request_id)
    assert request.status == "received" and request.paused_days == 2
    assert last_event(desk.vault, request_id)["action"] == "request.identity_verified"
    assert desk.post(f"/requests/{case}/close", status="completed").status_code == 303
    assert get_request(desk.vault, request_id).status == "completed"
    event = last_event(desk.vault, request_id)
    assert (event["action"], event["actor"]) == ("request.completed", "staff:caseworker")
    wrong_day = desk.post(f"/requests/{register(desk.vault, days_ago=1)}/pause", reason="fee", on="soon")
    assert wrong_day.status_code == 400 and "The day the clock stops must be a date" in wrong_day.text


def test_complaints_are_registered_acknowledged_and_closed_with_the_name(desk):
    case = register(desk.vault, days_ago=20)
    request_id = by_case(desk.vault, case).request_id
    today = utcnow().date()
    assert desk.post(f"/requests/{case}/complaint", received_on=(today - timedelta(days=1)).isoformat()
                     ).status_code == 303
    [complaint] = complaints(desk.vault, today=today, request_id=request_id)
    assert complaint.acknowledged_on is None and complaint.reference in desk.get("/complaints").text
    assert desk.post(f"/complaints/{complaint.reference}/acknowledge", on=today.isoformat()).status_code == 303
    assert desk.post(f"/complaints/{complaint.reference}/close", on=today.isoformat(),
                     outcome="not_upheld").status_code == 303
    [complaint] = complaints(desk.vault, today=today, request_id=request_id)
    assert (complaint.acknowledged_on, complaint.closed_on, complaint.outcome) == (today, today, "not_upheld")
    own = desk.post("/complaints", controller="jigowatt", request="", received_on=today.isoformat())
    assert own.status_code == 303
    assert [c.request_id for c in complaints(desk.vault, today=today, controller_id="jigowatt")] == [None]
    future = desk.post("/complaints", controller="jigowatt", received_on=(today + timedelta(days=3)).isoformat())
    assert future.status_code == 400 and "cannot be received in the future" in future.text
    assert [event for event in audited(desk.vault, request_id) if event[0].startswith("complaint.")] == [
        ("complaint.received", "staff:caseworker"), ("complaint.acknowledged", "staff:caseworker"),
        ("complaint.closed", "staff:caseworker")]


def test_the_dashboard_draws_each_controllers_figures(desk):
    register(desk.vault, days_ago=27)  # due within the week
    register_complaint(desk.vault, controller_id=CONTROLLER, received_on=utcnow().date() - timedelta(days=40),
                       actor="test", at=utcnow())
    page = desk.get("/dashboard").text
    controllers = {c.id for c in desk.vault.controllers()}
    assert page.count("<section class=\"controller\"") == len(controllers)
    assert page.count("<svg") == 3 * len(controllers)
    assert "Due this week: 1" in page and "Complaints to acknowledge: 1" in page
    assert "Open requests week by week" in page


@pytest.mark.airflow
def test_a_worked_request_shows_the_stores_searched_its_run_and_its_package(desk, shop_world, dagbag):
    case = register(desk.vault, days_ago=2, email=client_in_both())
    request_id = by_case(desk.vault, case).request_id
    run = dagbag.get_dag("dsar_fulfilment").test(logical_date=utcnow(), run_conf=ACCESS_FORM)  # the daily run
    assert run.state == "success", task_states(run.run_id)
    page = desk.get(f"/requests/{case}").text
    assert f'href="/dags/dsar_fulfilment/runs/{quote(run.run_id, safe="")}"' in page
    searched = [event["details"] for event in timeline(desk.vault, request_id) if event["action"] == "access.store"]
    assert {details["store"] for details in searched} >= {"vault", "fenland-shop", "fenland-logs"}
    section = words(page[page.index('<section class="searched">'):page.index('<section class="matches">')])
    for details in searched:
        assert (f"{details['store']} access: store held back: {details['held_back']}; "
                f"records: {details['records']}") in section
    package = get_request(desk.vault, request_id).package
    assert package and package in page
    download = desk.client.get(f"/requests/{case}/files/{package}", headers=desk.headers["caseworker"])
    assert download.content == (desk.settings.outbox_dir / package).read_bytes()


# -- a real Airflow API server -------------------------------------------------------------------


@dataclass
class LiveInbox:
    """An Airflow API server with the plugin, its users, and the demo vault it opens."""

    airflow: Airflow
    settings: VaultSettings
    directory: Path

    @property
    def url(self) -> str:
        return f"http://localhost:{self.airflow.port}"

    def token(self, user: str = "caseworker") -> str:
        response = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": PASSWORDS[user]},
                              timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["access_token"]


def start_live_inbox(directory: Path) -> LiveInbox:
    """The demo vault seeded as `make run` seeds it, and Airflow started on it with the login required.
    Stop it with `.airflow.stop()`."""
    settings = demo_vault_in(directory / "vault")
    passwords = directory / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    home = directory / "airflow-home"
    airflow = Airflow(home, {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT),
        "AIRFLOW_CONN_GDPR_VAULT_DEFAULT": connection_json(settings),
        "GDPR_OUTBOX_DIR": str(directory / "outbox"), "GDPR_WORK_DIR": str(directory / "work"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in ROLES.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs")}, f"sqlite:///{home / 'airflow.db'}")
    airflow.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"  # the page behind a real login
    home.mkdir(parents=True)
    try:
        airflow.start()
    except BaseException:
        airflow.stop()
        raise
    return LiveInbox(airflow, settings, directory)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    inbox = start_live_inbox(tmp_path_factory.mktemp("inbox"))
    yield inbox
    inbox.airflow.stop()


@pytest.mark.airflow
def test_the_live_page_refuses_anonymous_calls_and_lists_the_demo_for_a_user(live):
    for path in ("/privacy-requests/", "/privacy-requests/api/caseload", "/privacy-requests/dashboard"):
        assert httpx.get(live.url + path, timeout=30).status_code == 401, path
    assert httpx.post(f"{live.url}/privacy-requests/complaints", data={"controller": "jigowatt"},
                      timeout=30).status_code in (401, 403)
    headers = bearer(live.token())
    listed = httpx.get(f"{live.url}/privacy-requests/api/caseload", headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    with Vault.open(live.settings) as vault:
        demo = {line.case_reference for line in caseload(vault, today=utcnow().date(), open_only=True)}
    assert demo and {row["case_reference"] for row in listed.json()} == demo
    plugins = httpx.get(f"{live.url}/api/v2/plugins", headers=headers, timeout=30).json()["plugins"]
    [ours] = [plugin for plugin in plugins if plugin["name"] == "privacy_requests"]
    assert ours["fastapi_apps"][0]["url_prefix"] == "/privacy-requests"
    assert [(v["name"], v["destination"], v["href"]) for v in ours["external_views"]] == [
        ("Privacy requests", "nav", "/privacy-requests/")]
    errors = httpx.get(f"{live.url}/api/v2/plugins/importErrors", headers=headers, timeout=30).json()
    assert errors["total_entries"] == 0, errors


@pytest.mark.airflow
def test_a_live_action_is_audited_with_the_user_and_a_form_from_another_site_is_refused(live):
    with Vault.open(live.settings) as vault:
        case = register(vault, days_ago=2)
        request_id = by_case(vault, case).request_id
    cookie = {"_token": live.token()}  # as Airflow's login page leaves it in the browser
    form = {"reason": "fee", "on": utcnow().date().isoformat()}
    forged = httpx.post(f"{live.url}/privacy-requests/requests/{case}/pause", data=form, cookies=cookie,
                        headers={"Origin": "http://elsewhere.example"}, timeout=30)
    assert forged.status_code == 403
    sent = httpx.post(f"{live.url}/privacy-requests/requests/{case}/pause", data=form, cookies=cookie,
                      headers={"Origin": live.url}, timeout=30)
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == f"/privacy-requests/requests/{case}?done=pause"
    with Vault.open(live.settings) as vault:
        event = last_event(vault, request_id)
        assert get_request(vault, request_id).status == "paused"
    assert (event["action"], event["actor"], event["details"]["reason"]) == (
        "request.paused", "staff:caseworker", "fee")
    viewer = httpx.post(f"{live.url}/privacy-requests/requests/{case}/resume", data=form,
                        headers=bearer(live.token("auditor")), timeout=30)
    assert viewer.status_code == 403


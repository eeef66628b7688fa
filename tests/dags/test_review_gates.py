"""Review gates on a real scheduler and API server: the shop's controller has every request's identity
checked, every access package reviewed and every erasure confirmed by a person (its instruction file's
`review`). Each run waits in Required Actions (Browse > Required Actions; the REST API's HITL details),
and a person answers through the REST API as the UI does: an approved package is delivered, a refused
one destroyed and the request refused with the reason chosen; an erasure changes nothing until it is
confirmed; a controller without gates is answered without waiting. The questions and answers Airflow
keeps hold case references and counts, never the person's values.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from include.common.clock import utcnow
from include.demo.people import demo_people
from include.demo.shop import SHOP_CONTROLLER, customers, shop_data
from include.policies.instructions import load_instruction_dir
from include.requests.caseload import timeline
from include.requests.pipeline import RequestSettings, held_dir
from include.requests.register import (
    Request,
    get_request,
    possible_matches,
    register_request,
    request_subjects,
    requests_to_work,
    verify_identity,
)
from include.vault.instructions import record_instructions
from include.vault.schema import rights_request
from include.vault.store import Vault
from tests.airflow_server import BACKFILL_TIMEOUT_S, Airflow
from tests.conftest import PROJECT_ROOT
from tests.dags.test_canary import CANARY, CONF_TABLES, airflow_for, canary_places, canary_world

GATES = "review: {identity: true, package: true, erasure: true}\n"
# Someone of the canary's household: their customer row shares the canary's phone, so the canary's
# search holds it back for a person to decide (a possible match), at the package's review.
HOUSEHOLD = {"id": 9002, "customer_no": "C-9002", "email": "household.member@example.org",
             "phone": CANARY["phone_written"], "first_name": "Other", "last_name": "Member",
             "last_login_ip": "198.51.100.9", "preferences": "{}"}
SHOP_EMAILS = [row["email"] for row in shop_data().rows["customers"]]
UNGATED = next(person for person in demo_people() if person.controller_id == "lagan-bakery"  # no gates, no shop
               and person.role == "client")
# People answer minutes after a question is asked. Answered within a second or two, before the scheduler
# has seen the worker that asked exit, Airflow 3.3 takes the resumed try (it keeps the try number) for a
# task killed from outside, retries it and asks again: the tests answer a little later too.
ANSWER_AFTER_S = 10
RUNS = {  # the runs of the tests below, all started at once: each waits at its gates for its test
    "approved": ("dsar_fulfilment", {"email": CANARY["email"]}),
    "package_refused": ("dsar_fulfilment", {"email": SHOP_EMAILS[1]}),
    "identity_refused": ("dsar_fulfilment", {"email": "stranger.at.the.door@example.org"}),
    "erasure_confirmed": ("subject_rights", {"email": CANARY["email"], "right": "erase"}),
    "erasure_refused": ("subject_rights", {"email": SHOP_EMAILS[2], "right": "erase"}),
    "ungated": ("dsar_fulfilment", {"email": UNGATED.email, "controller": UNGATED.controller_id}),
    "daily": ("dsar_fulfilment", {}),  # no one in the form: the open requests received before the run's day
}
DAILY_EMAILS = SHOP_EMAILS[3:5]  # received yesterday, their identities checked since (gdpr-admin, as staff do)


class GatedAirflow:
    """The Airflow the tests answer questions in, and the world its workflows act on."""

    def __init__(self, airflow: Airflow, root: Path, vault_settings, shop_url: str) -> None:
        self.airflow = airflow
        self.root = root
        self.vault_settings = vault_settings
        self.shop_url = shop_url
        self.api = f"http://localhost:{airflow.port}/api/v2"
        self.runs: dict[str, tuple[str, str]] = {}  # test's name: (dag id, run id)
        self.daily_requests: list[str] = []  # the shop's requests a daily run works: the demo's, and two more

    def trigger(self, name: str) -> None:
        dag_id, conf = RUNS[name]
        form = {"controller": SHOP_CONTROLLER, **conf} if conf else {}  # an empty form: a daily run's work
        response = httpx.post(f"{self.api}/dags/{dag_id}/dagRuns", timeout=60, json={"logical_date": None,
                                                                                        "conf": form})
        assert response.status_code == 200, response.text
        self.runs[name] = (dag_id, response.json()["dag_run_id"])

    def run_state(self, name: str) -> str:
        dag_id, run_id = self.runs[name]
        return httpx.get(f"{self.api}/dags/{dag_id}/dagRuns/{run_id}", timeout=60).json()["state"]

    def question(self, name: str, task_id: str) -> dict:
        """The question the run waits on at the task, as Required Actions lists it (its HITL detail)."""
        (detail,) = self.questions(name, task_id, 1)
        return detail

    def questions(self, name: str, task_id: str, count: int) -> list[dict]:
        """The run's questions at the task (mapped: one per request), once `count` are asked."""
        dag_id, run_id = self.runs[name]
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        while True:
            listed = httpx.get(f"{self.api}/dags/~/dagRuns/~/hitlDetails", timeout=60,
                               params={"response_received": False, "task_id": task_id}).json()["hitl_details"]
            waiting = [detail for detail in listed if detail["task_instance"]["dag_run_id"] == run_id
                       and detail["task_instance"]["state"] == "awaiting_input"]
            if len(waiting) >= count:
                time.sleep(ANSWER_AFTER_S)
                return waiting
            state = self.run_state(name)
            assert state in ("queued", "running"), f"{name}: the run ended {state} before {task_id} asked"
            assert time.monotonic() < deadline, f"{name}: {task_id} asked nothing in {BACKFILL_TIMEOUT_S} s"
            time.sleep(2)

    def answer(self, name: str, question: dict, option: str, reason: str | None = None) -> None:
        """Answer as a person does in Required Actions: an option, and the form with its reason."""
        dag_id, run_id = self.runs[name]
        task = question["task_instance"]
        form = {"reason": reason or question["params"]["reason"]["value"]}
        response = httpx.patch(
            f"{self.api}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task['task_id']}/{task['map_index']}"
            "/hitlDetails", json={"chosen_options": [option], "params_input": form}, timeout=60)
        assert response.status_code == 200, response.text

    def finished(self, name: str) -> str:
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        while (state := self.run_state(name)) not in ("success", "failed"):
            assert time.monotonic() < deadline, f"{name}: the run is still {state}"
            time.sleep(2)
        return state

    def task_states(self, name: str) -> dict[tuple[str, int], str]:
        dag_id, run_id = self.runs[name]
        listed = httpx.get(f"{self.api}/dags/{dag_id}/dagRuns/{run_id}/taskInstances", timeout=60,
                           params={"limit": 100}).json()["task_instances"]
        return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in listed}

    def request(self, name: str) -> Request:
        """The request the run's form registered."""
        _, run_id = self.runs[name]
        with Vault.open(self.vault_settings) as vault:
            with vault.engine.connect() as conn:
                request_id = conn.execute(sa.select(rights_request.c.id).where(
                    rights_request.c.reference == f"airflow:{run_id}"[:64])).scalar_one()
            return get_request(vault, request_id)

    def shop_emails(self) -> set[str]:
        engine = sa.create_engine(self.shop_url)
        with engine.connect() as conn:
            found = set(conn.execute(sa.select(customers.c.email)).scalars())
        engine.dispose()
        return found


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> GatedAirflow:
    """The canary's world, the shop's controller with every gate, and an Airflow with every run started."""
    root = tmp_path_factory.mktemp("gates")
    settings, env = canary_world(root / "world")
    shop_url = env.pop("SHOP_URL")
    engine = sa.create_engine(shop_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(customers).values(**HOUSEHOLD))
    engine.dispose()
    instructions = root / "instructions"
    shutil.copytree(PROJECT_ROOT / "include" / "config" / "instructions", instructions)
    with (instructions / f"{SHOP_CONTROLLER}.yaml").open("a") as handle:
        handle.write(GATES)
    with Vault.open(settings) as vault:
        record_instructions(vault, load_instruction_dir(instructions), actor="test", at=utcnow())
        daily = [register_request(vault, controller_id=SHOP_CONTROLLER, kind="access", identities={"email": [email]},
                                  received_on=date.today() - timedelta(days=1), actor="test", at=utcnow())
                 for email in DAILY_EMAILS]
        for request_id in daily:
            verify_identity(vault, request_id, on=date.today(), actor="test", at=utcnow())
        daily = [request_id for request_id in requests_to_work(vault, received_before=date.today())
                 if get_request(vault, request_id).controller_id == SHOP_CONTROLLER]
    airflow = airflow_for(root, f"sqlite:///{root / 'airflow-home' / 'airflow.db'}",
                          {**env, "GDPR_INSTRUCTIONS_DIR": str(instructions)})
    gated = GatedAirflow(airflow, root, settings, shop_url)
    gated.daily_requests = daily
    try:
        airflow.start()
        for name in RUNS:
            gated.trigger(name)
        yield gated
    finally:
        airflow.stop()


def outbox(gated: GatedAirflow) -> Path:
    return gated.root / "world" / "outbox"


def held(gated: GatedAirflow) -> Path:
    return held_dir(RequestSettings(work_dir=gated.root / "world" / "work", outbox_dir=outbox(gated)))


@pytest.mark.airflow
def test_an_access_request_waits_for_its_identity_and_its_review_and_the_released_package_is_delivered(gated):
    asked = gated.question("approved", "check_identity")
    request = gated.request("approved")
    assert asked["subject"] == f"Identity of {request.case_reference} checked?"
    assert (request.status, request.pause_reason) == ("awaiting_id", "identity")
    assert asked["task_instance"]["rendered_map_index"] == request.case_reference
    assert set(asked["params"]["reason"]["schema"]["enum"]) >= {"identity_not_verified", "manifestly_unfounded"}
    gated.answer("approved", asked, "Identity verified")

    reviewed = gated.question("approved", "review_package")
    request = gated.request("approved")
    assert reviewed["subject"] == f"Package of {request.case_reference} ready to release?"
    assert request.status == "awaiting_review" and (held(gated) / request.package).exists()
    assert not (outbox(gated) / request.package).exists()
    with Vault.open(gated.vault_settings) as vault:
        matches = len(possible_matches(vault, request.id))
    assert matches == 1  # the household member's row, shown as a count with the command that lists it
    assert "held back 1 possible match," in reviewed["body"]
    assert f"`gdpr-admin request matches {request.case_reference}`" in reviewed["body"]
    gated.answer("approved", reviewed, "Release the package")

    assert gated.finished("approved") == "success"
    request = gated.request("approved")
    assert request.status == "completed" and (outbox(gated) / request.package).exists()
    assert not (held(gated) / request.package).exists()
    with Vault.open(gated.vault_settings) as vault:
        actors = {event["action"]: event["actor"] for event in timeline(vault, request.id)}
    # Each decision is audited under the Airflow user who took it; the stores were searched by the workflow.
    assert actors["request.identity_verified"].startswith("airflow-user:")
    assert actors["request.completed"].startswith("airflow-user:")
    assert actors["request.in_progress"].startswith("airflow:dsar_fulfilment.")


@pytest.mark.airflow
def test_a_package_refused_at_its_review_is_destroyed_and_the_request_refused_for_the_reason_chosen(gated):
    gated.answer("package_refused", gated.question("package_refused", "check_identity"), "Identity verified")
    reviewed = gated.question("package_refused", "review_package")
    held_package = held(gated) / gated.request("package_refused").package
    assert held_package.exists()
    assert reviewed["params"]["reason"]["value"] == "package_rejected"  # the form's default; another is chosen
    gated.answer("package_refused", reviewed, "Refuse the request", reason="manifestly_excessive")

    assert gated.finished("package_refused") == "success"
    request = gated.request("package_refused")
    assert (request.status, request.refusal_reason) == ("refused", "manifestly_excessive")
    assert not held_package.exists() and not (outbox(gated) / request.package).exists()
    letter = outbox(gated) / SHOP_CONTROLLER / f"refusal-{request.case_reference}.html"
    assert "manifestly excessive" in letter.read_text()


@pytest.mark.airflow
def test_a_requester_whose_identity_is_not_verified_is_refused_and_no_store_is_searched(gated):
    asked = gated.question("identity_refused", "check_identity")
    gated.answer("identity_refused", asked, "Refuse the request", reason="identity_not_verified")

    assert gated.finished("identity_refused") == "success"
    request = gated.request("identity_refused")
    assert (request.status, request.refusal_reason) == ("refused", "identity_not_verified")
    states = gated.task_states("identity_refused")
    assert states[("search_store", -1)] == "skipped" and states[("review_package", -1)] == "skipped"
    with Vault.open(gated.vault_settings) as vault:
        actions = [event["action"] for event in timeline(vault, request.id)]
    assert actions == ["request.received", "request.refused", "request.letter"]


@pytest.mark.airflow
def test_an_erasure_changes_nothing_until_a_person_confirms_it(gated):
    gated.answer("erasure_confirmed", gated.question("erasure_confirmed", "check_identity"), "Identity verified")
    asked = gated.question("erasure_confirmed", "confirm_erasure")
    request = gated.request("erasure_confirmed")
    assert asked["subject"] == f"Erasure of {request.case_reference} confirmed?"
    with Vault.open(gated.vault_settings) as vault:
        subjects = request_subjects(vault, request.id)
        records = [len(vault.subject_record_ids(subject)) for subject in subjects]
        actions = [event["action"] for event in timeline(vault, request.id)]
    assert request.status == "received" and actions == ["request.received", "request.identity_verified"]
    assert subjects and all(records) and CANARY["email"] in gated.shop_emails()
    gated.answer("erasure_confirmed", asked, "Confirm the erasure")

    assert gated.finished("erasure_confirmed") == "success"
    request = gated.request("erasure_confirmed")
    assert request.status == "completed" and CANARY["email"] not in gated.shop_emails()
    with Vault.open(gated.vault_settings) as vault:
        confirmed = next(event for event in timeline(vault, request.id)
                         if event["action"] == "request.erasure_confirmed")
    assert confirmed["actor"].startswith("airflow-user:")  # the person who confirmed, in the audit log


@pytest.mark.airflow
def test_an_erasure_refused_at_its_confirmation_erases_nothing(gated):
    gated.answer("erasure_refused", gated.question("erasure_refused", "check_identity"), "Identity verified")
    asked = gated.question("erasure_refused", "confirm_erasure")
    gated.answer("erasure_refused", asked, "Refuse the request", reason="manifestly_unfounded")

    assert gated.finished("erasure_refused") == "success"
    request = gated.request("erasure_refused")
    assert (request.status, request.refusal_reason) == ("refused", "manifestly_unfounded")
    assert SHOP_EMAILS[2] in gated.shop_emails()
    assert gated.task_states("erasure_refused")[("act_on_store", -1)] == "skipped"


@pytest.mark.airflow
def test_a_controller_without_gates_is_answered_without_waiting(gated):
    assert gated.finished("ungated") == "success"
    request = gated.request("ungated")
    assert request.status == "completed" and (outbox(gated) / request.package).exists()
    states = gated.task_states("ungated")
    # Nobody to ask about: the steps before the gates skipped them, so none of their tasks ran.
    assert {states[(task, -1)] for task in ("find_identities_to_check", "check_identity", "find_packages_to_review",
                                            "review_package")} == {"skipped"}
    assert states[("package_and_deliver", -1)] == "success"


@pytest.mark.airflow
def test_a_daily_run_asks_about_each_package_it_made_and_each_answer_acts_on_its_own_request(gated):
    with Vault.open(gated.vault_settings) as vault:
        *released, refused = (get_request(vault, request_id) for request_id in gated.daily_requests)
    assert len(released) == 2  # the demo's request, and one of those received yesterday
    asked = {detail["task_instance"]["rendered_map_index"]: detail
             for detail in gated.questions("daily", "review_package", len(gated.daily_requests))}
    assert set(asked) == {request.case_reference for request in (*released, refused)}
    gated.answer("daily", asked[refused.case_reference], "Refuse the request", reason="manifestly_unfounded")
    for request in released:
        gated.answer("daily", asked[request.case_reference], "Release the package")

    assert gated.finished("daily") == "success"
    with Vault.open(gated.vault_settings) as vault:
        *released, refused = (get_request(vault, request_id) for request_id in gated.daily_requests)
    assert all(request.status == "completed" and (outbox(gated) / request.package).exists() for request in released)
    assert (refused.status, refused.refusal_reason) == ("refused", "manifestly_unfounded")
    assert not (outbox(gated) / refused.package).exists()


@pytest.mark.airflow
def test_the_questions_and_answers_airflow_keeps_hold_no_personal_value(gated):
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while True:  # every form's identity question at least, answered by the tests above or not
        listed = httpx.get(f"{gated.api}/dags/~/dagRuns/~/hitlDetails", timeout=60, params={"limit": 100}).json()
        if listed["total_entries"] >= len(RUNS) - 2:
            break
        assert time.monotonic() < deadline, f"{listed['total_entries']} question(s) asked"
        time.sleep(2)
    personal = {*CANARY.values(), HOUSEHOLD["email"], SHOP_EMAILS[1], SHOP_EMAILS[2], *DAILY_EMAILS, UNGATED.email,
                "stranger.at.the.door@example.org"}
    text = json.dumps(listed)
    assert not {value for value in personal if value in text}
    engine = sa.create_engine(gated.airflow.metadata_url)
    with engine.connect() as conn:
        kept = " ".join(str(row) for row in conn.execute(sa.text("SELECT * FROM hitl_detail")))
    engine.dispose()
    assert "Identity of" in kept and not {value for value in personal if value in kept}
    # Anywhere else in Airflow (XCom, rendered fields, task logs): only the forms' conf, until the hygiene.
    places = canary_places(gated.airflow.metadata_url, [gated.root / "airflow-home"], [])
    assert {place for place in places if not place.startswith("file:airflow-home/airflow.db")} <= {
        f"metadata:{table}" for table in CONF_TABLES}, places


def test_every_gate_offers_refusal_reasons_the_letters_know():
    from gdpr.operators.gates import ErasureGate, IdentityGate, PackageGate
    from include.requests.register import REFUSAL_REASONS

    for gate in (IdentityGate, ErasureGate, PackageGate):
        assert gate.reasons and set(gate.reasons) <= set(REFUSAL_REASONS), gate.__name__
        assert "{case}" in gate.question


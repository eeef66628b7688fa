"""`dsar_fulfilment` end to end through Airflow (dag.test): the demo vault, the demo shop on each
backend and the demo server logs; the package checked against what the demo generated."""

from __future__ import annotations

import copy
import csv
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.settings import VaultSettings
from include.crypto.keyring import create_keyring
from include.crypto.sealing import open_sealed
from include.demo.people import demo_people, seed_demo
from include.demo.shop import SHOP_CONTROLLER, shop_data, shop_truth
from include.requests.importer import import_requests
from include.requests.register import get_request, requests_received
from include.vault.schema import controller
from include.vault.store import Vault
from tests.dags.conftest import (
    ACCESS_FORM,
    assert_cleaned_after_the_window,
    metadata_engine,
    metadata_holding,
    task_states,
)
from tests.helpers import client_in_both

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)
BACKLOG_DAYS = [date(2026, 10, 29), date(2026, 10, 30), date(2026, 10, 31)]  # due around St Andrew's Day
# One calendar month from the day of receipt, then the next working day of the controller's region:
# 29 October gives Sunday 29 November; 30 October gives Monday 30 November; 31 October, with no 31
# November, gives 30 November too. Monday 30 November 2026 is St Andrew's Day, a bank holiday in
# Scotland alone, where all three are due on Tuesday 1 December.
DUE_ON = {"england-and-wales": dict.fromkeys(BACKLOG_DAYS, date(2026, 11, 30)),
          "scotland": dict.fromkeys(BACKLOG_DAYS, date(2026, 12, 1))}


def trigger(dagbag, **conf):
    dag = dagbag.get_dag("dsar_fulfilment")
    return dag.test(logical_date=RUN_DAY, run_conf={**ACCESS_FORM, **conf})


@pytest.fixture(scope="module", autouse=True)
def cleaned_after_the_window(tmp_path_factory):
    yield
    assert_cleaned_after_the_window(client_in_both(), tmp_path_factory.mktemp("hygiene"))


@pytest.mark.airflow
def test_a_request_from_the_form_is_answered_with_every_record_and_nobody_elses(dagbag, shop_world, tmp_path):
    email = client_in_both()
    truth = shop_truth(email)
    run = trigger(dagbag, controller=SHOP_CONTROLLER, email=email)
    assert run.state == "success", task_states(run.run_id)
    # Fenland's file asks for no review: every task succeeds, and the gates, with nobody to ask about, are skipped
    # by the steps before them (neither their finding step nor their question runs).
    states = task_states(run.run_id)
    gates = {"find_identities_to_check", "check_identity", "find_packages_to_review", "review_package"}
    assert {t for (t, _), state in states.items() if state != "success"} == gates
    assert {state for (t, _), state in states.items() if t in gates} == {"skipped"}

    with Vault.open(shop_world) as vault:
        (request_id,) = requests_received(vault, date(2026, 11, 24), date(2026, 11, 25), open_only=False)
        request = get_request(vault, request_id)
        assert (request.status, request.due_on) == ("completed", date(2026, 12, 24))
        files = open_sealed((tmp_path / "outbox" / request.package).read_bytes(), keyring=vault.keyring)
        subject_records = len(vault.subject_record_ids(request.subject_id))
    manifest = json.loads(files["manifest.json"])
    counts = {(t["store"], t["table"]): t["records"] for t in manifest["tables"]}
    for table, rows in truth.rows.items():
        personal = [r for r in rows if r.get("meta_key") != "newsletter_source"]
        assert counts[("fenland-shop", table)] == len(personal), table
    assert sum(n for (store, _), n in counts.items() if store == "fenland-logs") == truth.visit_count
    assert sum(n for (store, _), n in counts.items() if store == "vault") == subject_records > 0
    everything = b"".join(data for name, data in files.items() if name != "report.pdf").decode()
    assert email in everything and not [other for other in truth.others_named if other in everything]

    engine = metadata_engine()
    with engine.connect() as conn:
        xcoms = " ".join(str(v) for v in conn.execute(sa.text(
            "SELECT value FROM xcom WHERE run_id = :r"), {"r": run.run_id}).scalars())
    engine.dispose()
    assert email not in xcoms and email.split("@")[0] not in xcoms
    # The form's conf is the one place the person's email is: the metadata hygiene removes it after
    # its window. Rendered fields, task instances, logs and XCom never hold it.
    assert metadata_holding(email) == {"dag_run"}


@pytest.mark.airflow
def test_an_unknown_person_gets_a_no_data_held_package(dagbag, shop_world, tmp_path):
    run = trigger(dagbag, controller=SHOP_CONTROLLER, email="nobody.at.all@example.org")
    assert run.state == "success"
    with Vault.open(shop_world) as vault:
        (request_id,) = requests_received(vault, date(2026, 11, 24), date(2026, 11, 25), open_only=False)
        request = get_request(vault, request_id)
        files = open_sealed((tmp_path / "outbox" / request.package).read_bytes(), keyring=vault.keyring)
    assert request.status == "completed" and request.subject_id is None
    assert "No personal data held" in files["report.html"].decode()


@pytest.mark.airflow
def test_a_store_that_is_down_fails_the_run_and_no_package_is_made(dagbag, shop_world, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FENLAND_SHOP", json.dumps(
        {"conn_type": "gdpr-client-store",
         "extra": {"sqlalchemy_url": "postgresql+psycopg2://postgres@127.0.0.1:1/shop?connect_timeout=2"}}))
    dag = dagbag.get_dag("dsar_fulfilment")
    for task in dag.tasks:  # the real DAG retries; here one failure is enough to see
        monkeypatch.setattr(task, "retries", 0)  # undone after the test: the DagBag is the session's
    run = dag.test(logical_date=RUN_DAY, run_conf={**ACCESS_FORM, "controller": SHOP_CONTROLLER,
                                                   "email": client_in_both()})
    assert run.state == "failed"
    states = task_states(run.run_id)
    assert states[("package_and_deliver", -1)] == "upstream_failed"
    assert "failed" in {state for (task, _), state in states.items() if task == "search_store"}
    with Vault.open(shop_world) as vault:
        (request_id,) = requests_received(vault, date(2026, 11, 24), date(2026, 11, 25))
        assert get_request(vault, request_id).status == "in_progress"
    assert not list(tmp_path.rglob("*.gdprpkg"))


def backlog_csv(path: Path) -> Path:
    """50 requests over three days: shop customers, the vault's people of every controller, strangers."""
    shop_emails = [r["email"] for r in shop_data().rows["customers"]]
    others = [(p.controller_id, p.email) for p in demo_people() if p.controller_id != SHOP_CONTROLLER]
    rows = [(SHOP_CONTROLLER, email) for email in shop_emails[:20]] + others[:25]
    rows += [(SHOP_CONTROLLER, f"stranger{n}@example.org") for n in range(50 - len(rows))]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["controller", "reference", "received_on", "email"])
        for n, (controller, email) in enumerate(rows):
            writer.writerow([controller, f"REQ-{n:03d}", BACKLOG_DAYS[n % 3].isoformat(), email])
    return path


def backfill_backlog(dagbag, settings, csv_path: Path) -> dict[str, dict]:
    """Import, run the DAG for each day, and return each request's package contents by reference."""
    with Vault.open(settings) as vault:
        assert import_requests(vault, csv_path, actor="test", at=RUN_DAY).rows == 50
        assert len(set(import_requests(vault, csv_path, actor="test", at=RUN_DAY).request_ids)) == 50  # twice: once
    dag = dagbag.get_dag("dsar_fulfilment")
    for day in BACKLOG_DAYS:
        # dag.test gives a run the day before its date as data interval; a backfill's run for D has [D, D+1).
        # Empty params, given explicitly: dag.test runs tasks in this process, where a run's params
        # stay on the DAG object for the next run.
        run = dag.test(logical_date=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
                       run_conf=ACCESS_FORM)
        assert run.state == "success", task_states(run.run_id)
    packages = {}
    with Vault.open(settings) as vault:
        for request_id in requests_received(vault, BACKLOG_DAYS[0], BACKLOG_DAYS[-1] + timedelta(days=1),
                                            open_only=False):
            request = get_request(vault, request_id)
            with vault.engine.connect() as conn:
                region = conn.execute(sa.select(controller.c.region)
                                      .where(controller.c.id == request.controller_id)).scalar()
            assert request.status == "completed", request.reference
            assert request.due_on == DUE_ON[region][request.received_on], request.reference
            outbox = Path(os.environ["GDPR_OUTBOX_DIR"])
            packages[request.reference] = open_sealed((outbox / request.package).read_bytes(), keyring=vault.keyring)
    return packages


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_backlog_imported_from_csv_and_backfilled_is_fulfilled_and_again_gives_the_same_packages(
        dagbag, shop_world, tmp_path, monkeypatch):
    csv_path = backlog_csv(tmp_path / "backlog.csv")
    first = backfill_backlog(dagbag, shop_world, csv_path)
    assert len(first) == 50
    no_data = [ref for ref, files in first.items() if "No personal data held" in files["report.html"].decode()]
    assert 0 < len(no_data) < 50

    # The same backlog in a second vault, backfilled again: the same packages, file by file.
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    create_keyring(again_dir / "keyring.json")
    again = VaultSettings(vault_url=f"sqlite:///{again_dir / 'vault.db'}", keystore_url=f"sqlite:///{again_dir / 'keys.db'}",
                          keyring_path=again_dir / "keyring.json")
    with Vault.open(again, create=True) as vault:
        seed_demo(vault)
    monkeypatch.setenv("AIRFLOW_CONN_GDPR_VAULT_DEFAULT", json.dumps({"conn_type": "gdpr-vault", "extra": {
        "database_url": again.vault_url, "keystore_url": again.keystore_url, "keyring_path": str(again.keyring_path)}}))
    monkeypatch.setenv("GDPR_OUTBOX_DIR", str(tmp_path / "outbox-again"))
    second = backfill_backlog(dagbag, again, csv_path)

    assert {ref: comparable(files) for ref, files in second.items()} == {ref: comparable(files) for ref, files in first.items()}


def comparable(files: dict[str, bytes]) -> dict[str, object]:
    """A package with what two vaults cannot share made alike: the request's id, and the order of the
    vault's records (they come in the order of their random record ids). Everything else, the vault's
    data, the manifest and the report included, must be the same."""
    request_id = json.loads(files["manifest.json"])["request"]
    alike: dict[str, object] = {}
    for name, content in files.items():
        if name == "report.pdf":  # made from report.html, which names the case, not the request's id
            alike[name] = content
            continue
        text = content.decode().replace(request_id, "<request>")
        if name.startswith("data/vault/") and name.endswith(".json"):
            alike[name] = sorted(json.dumps(row, sort_keys=True) for row in json.loads(text))
        elif name.startswith("data/vault/") and name.endswith(".csv"):
            header, *rows = text.splitlines()
            alike[name] = [header, *sorted(rows)]
        else:
            alike[name] = text
    return alike


def test_the_trigger_form_refuses_a_malformed_email_and_an_unknown_controller(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.get_dag("dsar_fulfilment")
    assert dag.params.get_param("controller").schema["enum"] == [None, "fenland-cycles", "glencoe-outdoor",
                                                                 "jigowatt", "lagan-bakery", "oak-home"]

    def validated(conf: dict) -> dict:  # as the API server and the trigger form check a run's conf
        params = copy.deepcopy(dag.params)
        params.update(conf)
        return params.validate()

    assert validated({"controller": SHOP_CONTROLLER, "email": "ada@example.org"})["email"] == "ada@example.org"
    for bad in ({"controller": SHOP_CONTROLLER, "email": "not-an-address"},
                {"controller": SHOP_CONTROLLER, "email": "two@@example.org"},
                {"controller": "nobody", "email": "ada@example.org"},
                {"controller": SHOP_CONTROLLER, "email": "ada@example.org", "received_on": "31/10/2026"}):
        with pytest.raises(ParamValidationError):
            validated(bad)

"""`subject_rights` end to end through Airflow (dag.test): the demo vault, the demo shop on each backend
and the demo server logs; and a run killed halfway through an erasure, run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.crypto.sealing import open_sealed
from include.demo.shop import SHOP_CONTROLLER, shop_truth
from include.duties.marketing import export_mailing_list, subscribe
from include.requests.register import get_request
from include.stores.vault import retained_subject_id
from include.vault.schema import rights_request
from include.vault.store import Vault
from tests.conftest import PROJECT_ROOT
from tests.dags.conftest import assert_cleaned_after_the_window, metadata_engine, task_states
from tests.helpers import client_in_both
from tests.unit.test_rights import log_lines, personal_values, shop_rows, vault_state

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)
FORM = {"rectify_field": None, "corrected_value": None, "phone": None, "objection_ground": "direct_marketing",
        "person_told_on": None, "received_on": None}


@pytest.fixture(scope="module", autouse=True)
def cleaned_after_the_window(tmp_path_factory):
    yield
    for value in (client_in_both(), "fixed.address@example.net"):
        assert_cleaned_after_the_window(value, tmp_path_factory.mktemp("hygiene"))


def trigger(dagbag, day: datetime = RUN_DAY, **conf):
    return dagbag.get_dag("subject_rights").test(logical_date=day, run_conf={**FORM, **conf})


def requests_of(settings) -> dict[str, object]:
    """{kind:id: request} of the requests the runs' forms made (the demo has requests of its own)."""
    with Vault.open(settings) as vault:
        with vault.engine.connect() as conn:
            ids = conn.execute(sa.select(rights_request.c.id).where(rights_request.c.reference.like("airflow:%"))
                               .order_by(rights_request.c.id)).scalars().all()
        return {f"{get_request(vault, i).kind}:{i}": get_request(vault, i) for i in ids}


@pytest.mark.airflow
def test_an_objection_and_an_erasure_from_the_form_reach_every_store(dagbag, shop_world, tmp_path, store_urls):
    email = client_in_both()
    truth = shop_truth(email)
    objection = trigger(dagbag, controller=SHOP_CONTROLLER, email=email, right="object")
    assert objection.state == "success", task_states(objection.run_id)

    erasure = trigger(dagbag, RUN_DAY.replace(hour=11), controller=SHOP_CONTROLLER, email=email, right="erase")
    assert erasure.state == "success", task_states(erasure.run_id)
    states = task_states(erasure.run_id)
    assert {i for (t, i) in states if t == "act_on_store"} == {0, 1}
    # No review asked for: every task succeeds, and the gates, with nobody to ask about, are skipped by the
    # registration (neither their finding step nor their question runs).
    gates = {"find_identities_to_check", "check_identity", "find_erasures_to_confirm", "confirm_erasure"}
    assert {t for (t, _), state in states.items() if state != "success"} == gates
    assert {state for (t, _), state in states.items() if t in gates} == {"skipped"}

    requests = requests_of(shop_world)
    assert [r.status for r in requests.values()] == ["completed", "completed"]
    erase = next(r for k, r in requests.items() if k.startswith("erase:"))
    confirmation = json.loads((tmp_path / "outbox" / erase.package).with_suffix(".json").read_text())
    kept = {(s["store"], k["table"]) for s in confirmation["stores"] for k in s["kept"]}
    assert kept == {("vault", "invoice"), ("fenland-shop", "orders"), ("fenland-shop", "order_lines")}

    shop = sa.create_engine(store_urls["copy"])
    rows = shop_rows(shop)
    order_ids = {o["id"] for o in truth.rows["orders"]}
    elsewhere = repr({t: [r for r in rs if t != "orders" or r["id"] not in order_ids] for t, rs in rows.items()})
    lines = log_lines(tmp_path / "logs")
    for values in personal_values(email).values():
        for value in values:
            assert value.lower() not in elsewhere.lower() and not [line for line in lines if value in line], value
    with Vault.open(shop_world) as vault:
        [kept_by] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
        assert kept_by == retained_subject_id(erase.subject_id) and vault.keystore.fetch([erase.subject_id]) == {}
        before = (shop_rows(shop), lines, vault_state(vault))

    again = trigger(dagbag, RUN_DAY.replace(hour=12), controller=SHOP_CONTROLLER, email=email, right="erase")
    assert again.state == "success", task_states(again.run_id)
    with Vault.open(shop_world) as vault:
        assert (shop_rows(shop), log_lines(tmp_path / "logs"), vault_state(vault)) == before
        # Signed up again after objecting and being erased: the export skips them.
        subscribe(vault, controller_id=SHOP_CONTROLLER, email=email.upper(), name="Back Again", source="signup form",
                  actor="test", at=RUN_DAY)
        export = export_mailing_list(vault, controller_id=SHOP_CONTROLLER, outbox=tmp_path / "outbox", actor="test",
                                     at=RUN_DAY)
        assert (export.exported, export.suppressed) == (0, 1)
        assert email not in open_sealed(export.path.read_bytes(), keyring=vault.keyring)["mailing-list.csv"].decode()
    shop.dispose()

    engine = metadata_engine()
    with engine.connect() as conn:
        xcoms = " ".join(str(v) for v in conn.execute(sa.text(
            "SELECT value FROM xcom WHERE dag_id = 'subject_rights'")).scalars())
    engine.dispose()
    assert email not in xcoms and email.split("@")[0] not in xcoms


@pytest.mark.airflow
def test_a_rectification_from_the_form_and_a_refused_one(dagbag, shop_world, store_urls):
    email, new = client_in_both(), "fixed.address@example.net"
    run = trigger(dagbag, controller=SHOP_CONTROLLER, email=email, right="rectify", rectify_field="email",
                  corrected_value=new)
    assert run.state == "success", task_states(run.run_id)
    shop = sa.create_engine(store_urls["copy"])
    assert email not in repr(shop_rows(shop)) and new in repr(shop_rows(shop))
    with Vault.open(shop_world) as vault:
        assert vault.find_records(SHOP_CONTROLLER, "email", email) == []
        assert vault.find_records(SHOP_CONTROLLER, "email", new)

    restricted = trigger(dagbag, RUN_DAY.replace(hour=11), controller=SHOP_CONTROLLER, email=new, right="restrict")
    refused = trigger(dagbag, RUN_DAY.replace(hour=12), controller=SHOP_CONTROLLER, email=new, right="rectify",
                      rectify_field="email", corrected_value="third@example.net")
    assert restricted.state == refused.state == "success"
    assert [r.status for k, r in requests_of(shop_world).items() if k.startswith("rectify:")] in (
        ["completed", "refused"], ["refused", "completed"])
    assert new in repr(shop_rows(shop)) and "third@example.net" not in repr(shop_rows(shop))
    shop.dispose()


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_form_missing_what_the_right_needs_fails_at_once_with_the_reason(dagbag, shop_world, capfd):
    run = trigger(dagbag, controller=SHOP_CONTROLLER, email=client_in_both(), right="rectify", rectify_field="email")
    assert run.state == "failed"
    # Failed, not up for retry: a retry would get the same answer.
    assert task_states(run.run_id)[("register_request", -1)] == "failed"
    printed = capfd.readouterr()
    assert ("the right 'Rectification' needs 'Corrected value' (section 'Only for a rectification'), which the "
            "form left empty") in printed.out + printed.err
    assert requests_of(shop_world) == {}


KILLED_ERASURE = """
import os, signal, sys
from datetime import datetime
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/plugins"]
from airflow.dag_processing.dagbag import DagBag
import importlib
target = sys.argv[3]
erasure = importlib.import_module({"delete_records": "include.stores.vault", "apply_to_hosts": "include.stores.logs"}[target])
real = getattr(erasure, target)
calls = []
def then_die(*args, **kwargs):
    calls.append(1)
    if len(calls) == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(erasure, target, then_die)
dag = DagBag(dag_folder=sys.argv[1] + "/dags").get_dag("subject_rights")
day = datetime.fromisoformat(sys.argv[2])
dag.test(logical_date=day, run_after=day, run_conf=dict(__import__("json").loads(sys.argv[5])))
"""


def world_copy(settings, tmp_path) -> dict[str, str]:
    """The environment of a copy of the SQLite vault, key store, shop and logs: the same records."""
    copy = tmp_path / "uninterrupted"
    shutil.copytree(tmp_path / "logs", copy / "logs")
    for kind in ("vault", "keys", "copy"):
        shutil.copy(tmp_path / f"{kind}.db", copy / f"{kind}.db")
    vault = {"database_url": f"sqlite:///{copy / 'vault.db'}", "keystore_url": f"sqlite:///{copy / 'keys.db'}",
             "keyring_path": str(settings.keyring_path)}
    return {"AIRFLOW_CONN_GDPR_VAULT_DEFAULT": json.dumps({"conn_type": "gdpr-vault", "extra": vault}),
            "AIRFLOW_CONN_FENLAND_SHOP": json.dumps({"conn_type": "gdpr-client-store",
                                                     "extra": {"sqlalchemy_url": f"sqlite:///{copy / 'copy.db'}"}}),
            **{f"GDPR_{name}": str(copy / sub) for name, sub in (
                ("SERVER_LOG_ROOT", "logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
                ("REPORTS_DIR", "reports"))}}


def end_state(settings, root: Path) -> tuple:
    shop = sa.create_engine(f"sqlite:///{root / 'copy.db'}")
    with Vault.open(settings) as vault:
        state = (shop_rows(shop), log_lines(root / "logs"), vault_state(vault),
                 [(r.kind, r.status) for r in requests_of(settings).values()])
    shop.dispose()
    return state


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("target", "call"), [("delete_records", 1), ("apply_to_hosts", 2)],
                         ids=["vault-after-rekeying", "logs-after-one-file"])
def test_an_erasure_killed_halfway_and_run_again_ends_as_an_uninterrupted_one(dagbag, shop_world, tmp_path,
                                                                             monkeypatch, target, call):
    conf = {**FORM, "controller": SHOP_CONTROLLER, "email": client_in_both(), "right": "erase"}
    copy_env = world_copy(shop_world, tmp_path)
    killed_env = {name: os.environ[name] for name in copy_env}
    for name, value in copy_env.items():
        monkeypatch.setenv(name, value)
    uninterrupted = dagbag.get_dag("subject_rights").test(logical_date=RUN_DAY, run_conf=conf)
    assert uninterrupted.state == "success", task_states(uninterrupted.run_id)
    for name, value in killed_env.items():
        monkeypatch.setenv(name, value)

    day = RUN_DAY.replace(hour=13)
    child = subprocess.run([sys.executable, "-c", KILLED_ERASURE, str(PROJECT_ROOT), day.isoformat(), target,
                            str(call), json.dumps(conf)], env=os.environ.copy(), capture_output=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert [r.status for r in requests_of(shop_world).values()] == ["in_progress"]  # killed halfway

    # The same run (the same run_after gives the same run id), its tasks cleared and tried again.
    again = dagbag.get_dag("subject_rights").test(logical_date=day, run_after=day, run_conf=conf)
    assert again.state == "success", task_states(again.run_id)
    copy_settings = shop_world.model_copy(update={
        "vault_url": f"sqlite:///{tmp_path / 'uninterrupted' / 'vault.db'}",
        "keystore_url": f"sqlite:///{tmp_path / 'uninterrupted' / 'keys.db'}"})
    assert end_state(shop_world, tmp_path) == end_state(copy_settings, tmp_path / "uninterrupted")

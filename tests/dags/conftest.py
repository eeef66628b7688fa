"""Airflow for the DAG tests: a metadata database (SQLite) migrated once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.settings import WorkflowSettings
from include.demo.shop import seed_demo_logs, seed_shop
from include.policies.instructions import load_instruction_dir
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="session")
def airflow_db():
    result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True,
                            text=True, env=os.environ.copy(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


@pytest.fixture
def vault_connection(vault_settings, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GDPR_VAULT_DEFAULT", json.dumps({
        "conn_type": "gdpr-vault",
        "extra": {"database_url": vault_settings.vault_url, "keystore_url": vault_settings.keystore_url,
                  "keyring_path": str(vault_settings.keyring_path)}}))
    return vault_settings


# The whole form of dsar_fulfilment, for dag.test: the session's DagBag keeps one run's params on the
# DAG for the next, so every run gives every param.
ACCESS_FORM = dict.fromkeys(("controller", "email", "phone", "customer_number", "received_on"))


def metadata_engine():
    return sa.create_engine(f"sqlite:///{Path(os.environ['AIRFLOW_HOME']) / 'airflow.db'}")


def xcom_value(run_id: str, dag_id: str, task_id: str, map_index: int = -1):
    engine = metadata_engine()
    with engine.connect() as conn:
        value = conn.execute(sa.text(
            "SELECT value FROM xcom WHERE dag_id = :dag AND run_id = :run AND task_id = :task "
            "AND map_index = :index AND key = 'return_value'"),
            {"dag": dag_id, "run": run_id, "task": task_id, "index": map_index}).scalar()
    engine.dispose()
    value = json.loads(value)
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def shop_world(demo_vault, vault_connection, store_urls, tmp_path, monkeypatch):
    """The demo vault, the demo shop (on the backend's spare database) behind the connection
    fenland_shop, the demo server logs, and the workflows' directories (the disclosures' inbox too) in
    tmp_path."""
    engine = sa.create_engine(store_urls["copy"])
    seed_shop(engine)
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_FENLAND_SHOP", json.dumps(
        {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": store_urls["copy"]}}))
    for name, sub in (("SERVER_LOG_ROOT", "logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
                      ("REPORTS_DIR", "reports"), ("DISCLOSURES_INBOX", "inbox")):
        monkeypatch.setenv(f"GDPR_{name}", str(tmp_path / sub))
    seed_demo_logs(tmp_path / "logs", load_instruction_dir(WorkflowSettings().instructions_dir))
    demo_vault.dispose()
    return vault_connection


def task_states(run_id: str) -> dict:
    engine = metadata_engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT task_id, map_index, state FROM task_instance WHERE run_id = :r"),
                            {"r": run_id}).all()
    engine.dispose()
    return {(task, index): state for task, index, state in rows}


def metadata_holding(value: str) -> set[str]:
    """The metadata tables with the value in any column."""
    engine = metadata_engine()
    found = set()
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            if any(value in str(row) for row in rows):
                found.add(table)
    engine.dispose()
    return found


def assert_cleaned_after_the_window(value: str, directory: Path) -> None:
    """After the runs, `airflow_metadata_hygiene` with a window of 0 hours leaves no trace of the value
    the forms named in any metadata table, and audits the cleaning (in a vault of its own here)."""
    from airflow.dag_processing.dagbag import DagBag

    from include.common.settings import VaultSettings
    from include.crypto.keyring import create_keyring
    from include.vault.schema import audit_event
    from include.vault.store import Vault
    from tests.airflow_server import connection_json

    create_keyring(directory / "keyring.json")
    settings = VaultSettings(vault_url=f"sqlite:///{directory / 'vault.db'}",
                             keystore_url=f"sqlite:///{directory / 'keys.db'}", keyring_path=directory / "keyring.json")
    Vault.open(settings, create=True).dispose()
    connections = {"AIRFLOW_CONN_GDPR_VAULT_DEFAULT": connection_json(settings),
                   "AIRFLOW_CONN_AIRFLOW_METADATA": json.dumps({"conn_type": "generic", "extra": {
                       "sqlalchemy_url": f"sqlite:///{Path(os.environ['AIRFLOW_HOME']) / 'airflow.db'}"}})}
    before = {name: os.environ.get(name) for name in connections}
    os.environ.update(connections)
    try:
        dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).get_dag("airflow_metadata_hygiene")
        run = dag.test(logical_date=datetime.now(UTC), run_conf={"window_hours": 0})
    finally:
        for name, earlier in before.items():
            if earlier is None:
                del os.environ[name]
            else:
                os.environ[name] = earlier
    assert run.state == "success"
    assert metadata_holding(value) == set()
    with Vault.open(settings) as vault, vault.engine.connect() as conn:
        assert conn.execute(sa.select(audit_event.c.action).order_by(audit_event.c.seq.desc())).scalar() == \
            "airflow.metadata_cleaned"

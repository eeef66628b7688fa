"""Airflow for the DAG tests: a metadata database (SQLite) migrated once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

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
        "conn_type": "gdpr_vault",
        "extra": {"database_url": vault_settings.vault_url, "keystore_url": vault_settings.keystore_url,
                  "keyring_path": str(vault_settings.keyring_path)}}))
    return vault_settings


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

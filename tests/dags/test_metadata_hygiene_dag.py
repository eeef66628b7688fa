"""`airflow_metadata_hygiene` through Airflow (dag.test) with a window: what Airflow recorded inside it
stays, what is older goes, from the metadata database (a run with its conf, task instances, XCom) and
from the task-log folder. (A window of 0 hours after every workflow: assert_cleaned_after_the_window.)"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.vault.schema import audit_event
from include.vault.store import Vault
from tests.dags.conftest import metadata_engine, task_states, xcom_value

HOUR = 3600


def run_rows(run_id: str) -> dict[str, int]:
    engine = metadata_engine()
    with engine.connect() as conn:
        found = {table: conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": run_id}).scalar()
                 for table in ("dag_run", "task_instance", "xcom")}
    engine.dispose()
    return found


def age(run_id: str, hours: int) -> None:
    """Make a run, its task instances and its XCom as old as if they were made `hours` ago (dag.test
    starts a run at its logical date)."""
    then = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S.%f")  # as Airflow stores it
    engine = metadata_engine()
    with engine.begin() as conn:
        for table, column in (("dag_run", "start_date"), ("task_instance", "start_date"), ("xcom", "timestamp")):
            conn.execute(sa.text(f"UPDATE {table} SET {column} = :then WHERE run_id = :r"), {"then": then, "r": run_id})
    engine.dispose()


def task_log(run_id: str, hours_ago: int) -> Path:
    """A task log file, as Airflow names them, last written `hours_ago`."""
    from airflow.sdk.configuration import conf

    path = (Path(conf.get("logging", "base_log_folder")) / "dag_id=airflow_metadata_hygiene" / f"run_id={run_id}"
            / "task_id=clean_airflow_metadata" / "attempt=1.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a task's log\n")
    then = time.time() - hours_ago * HOUR
    os.utime(path, (then, then))
    return path


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_hygiene_keeps_what_is_inside_its_window_and_removes_what_is_older(dagbag, vault, vault_connection,
                                                                               monkeypatch):
    vault.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_METADATA", json.dumps({"conn_type": "generic", "extra": {
        "sqlalchemy_url": str(metadata_engine().url)}}))
    dag = dagbag.get_dag("airflow_metadata_hygiene")
    now = datetime.now(UTC)
    old, recent = (dag.test(logical_date=now - timedelta(minutes=minutes), run_conf={"window_hours": 720})
                   for minutes in (2, 1))
    assert old.state == recent.state == "success"
    age(old.run_id, 30)
    age(recent.run_id, 23)
    old_log, recent_log = task_log(old.run_id, 30), task_log(recent.run_id, 23)
    assert run_rows(old.run_id) == run_rows(recent.run_id) == {"dag_run": 1, "task_instance": 1, "xcom": 1}

    cleaning = dag.test(logical_date=datetime.now(UTC), run_conf={"window_hours": 24})
    assert cleaning.state == "success", task_states(cleaning.run_id)
    assert run_rows(old.run_id) == {"dag_run": 0, "task_instance": 0, "xcom": 0}
    assert run_rows(recent.run_id) == {"dag_run": 1, "task_instance": 1, "xcom": 1}
    assert not old_log.exists() and not old_log.parent.exists()
    assert recent_log.exists()
    assert xcom_value(cleaning.run_id, "airflow_metadata_hygiene", "clean_airflow_metadata")["log_files_removed"] == 1
    with Vault.open(vault_connection) as opened, opened.engine.connect() as conn:
        details = conn.execute(sa.select(audit_event.c.details).where(
            audit_event.c.action == "airflow.metadata_cleaned").order_by(audit_event.c.seq.desc())).scalar()
    assert json.loads(details)["log_files_removed"] == 1

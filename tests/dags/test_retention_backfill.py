"""Backfilling `accounting_retention` with `airflow backfill create` gives the same result as running
the same days one after another.

The backfill runs on a real scheduler and API server with their own Airflow home, on one demo vault;
the days in order run through dag.test on another. The days straddle 1 April 2026, when invoices of
the financial year that ended on 31 March 2019 pass the 7-year rule.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.vault.store import Vault
from tests.airflow_server import Airflow, connection_json, demo_vault_in
from tests.conftest import PROJECT_ROOT
from tests.dags.test_retention_dags import invoice_state, run

DAYS = [datetime(2026, 3, 30, 2, 30, tzinfo=UTC) + timedelta(days=n) for n in range(3)]
CONF = {"dry_run": False, "batch_size": 5}


def deleted_per_day(runs: dict[datetime, str], metadata_url: str) -> dict:
    """{day: {controller: deleted}} from delete_expired_records' XComs."""
    engine = sa.create_engine(metadata_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT run_id, value FROM xcom WHERE dag_id = 'accounting_retention' "
            "AND task_id = 'delete_expired_records' AND key = 'return_value'")).all()
    engine.dispose()
    by_run: dict[str, dict] = {}
    for run_id, value in rows:
        summary = value
        while isinstance(summary, str):  # JSON text on SQLite, decoded JSONB on PostgreSQL
            summary = json.loads(summary)
        if not summary["by_category"]:  # a controller with nothing in the vault (its data is in its shop)
            continue
        controller = summary["by_category"][0]["controller_id"]
        by_run.setdefault(run_id, {})[controller] = summary["deleted"]
    return {day.date(): by_run[run_id] for day, run_id in runs.items()}


@pytest.mark.airflow
def test_a_backfill_gives_the_same_result_as_the_days_run_in_order(dagbag, tmp_path, monkeypatch,
                                                                  airflow_metadata_url):
    in_order, backfilled = demo_vault_in(tmp_path / "in-order"), demo_vault_in(tmp_path / "backfilled")
    monkeypatch.setenv("GDPR_REPORTS_DIR", str(tmp_path / "reports-in-order"))
    monkeypatch.setenv("AIRFLOW_CONN_GDPR_VAULT_DEFAULT", connection_json(in_order))
    ordered_runs = {day: run(dagbag, "accounting_retention", day, **CONF).run_id for day in DAYS}
    ordered = deleted_per_day(ordered_runs, f"sqlite:///{Path(os.environ['AIRFLOW_HOME']) / 'airflow.db'}")

    airflow = Airflow(tmp_path / "airflow-home", {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT),
        "GDPR_REPORTS_DIR": str(tmp_path / "reports-backfilled"),
        "AIRFLOW_CONN_GDPR_VAULT_DEFAULT": connection_json(backfilled)}, airflow_metadata_url)
    try:
        airflow.start()
        airflow.cli("backfill", "create", "--dag-id", "accounting_retention",
                    "--from-date", DAYS[0].date().isoformat(), "--to-date", DAYS[-1].date().isoformat() + "T23:59",
                    "--dag-run-conf", json.dumps(CONF), "--max-active-runs", "1")
        backfill_runs = airflow.wait_for_backfill("accounting_retention", len(DAYS))
    finally:
        airflow.stop()
    assert sorted(backfill_runs) == DAYS

    assert deleted_per_day(backfill_runs, airflow_metadata_url) == ordered
    # Invoices of the year to 31 March 2019 are kept on 31 March 2026 and go on 1 April.
    totals = {day: sum(by_controller.values()) for day, by_controller in ordered.items()}
    assert totals[DAYS[1].date()] == 0 and totals[DAYS[2].date()] > 0
    assert invoice_state(backfilled) == invoice_state(in_order)
    with Vault.open(backfilled) as vault:
        with vault.engine.connect() as conn:
            assert vault.audit.verify(conn).ok

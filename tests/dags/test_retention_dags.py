"""`accounting_retention` and `server_log_retention` end to end through Airflow (dag.test), with the
vault on each backend and the demo's server logs on disk."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.settings import WorkflowSettings
from include.demo.shop import seed_demo_logs
from include.policies.instructions import load_instruction_dir
from include.vault.schema import record
from include.vault.store import Vault
from tests.conftest import PROJECT_ROOT
from tests.dags.conftest import metadata_engine, xcom_value

RUN_DAY = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
OLD_INVOICES = 24  # one per client, all from financial years that ended by 31 March 2019


@pytest.fixture
def workflow_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("GDPR_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("GDPR_SERVER_LOG_ROOT", str(tmp_path / "logs"))
    return tmp_path


def run(dagbag, dag_id, logical_date, **conf):
    dag = dagbag.get_dag(dag_id)
    params = {"dry_run": False, "batch_size": 1000, **conf} if dag_id == "accounting_retention" else {}
    dag_run = dag.test(logical_date=logical_date, run_conf=params)
    assert dag_run.state == "success", f"{dag_id} ended {dag_run.state}"
    return dag_run


def sweeps(dag_run) -> dict:
    by_controller = {}
    for index in range(4):
        summary = xcom_value(dag_run.run_id, "accounting_retention", "delete_expired_records", index)
        by_controller[summary["by_category"][0]["controller_id"] if summary["by_category"] else index] = summary
    return by_controller


def invoice_state(settings) -> list[tuple]:
    """What is left, by meaning (ids differ between two seedings of the demo)."""
    with Vault.open(settings) as vault, vault.engine.connect() as conn:
        return sorted(conn.execute(sa.select(record.c.controller_id, record.c.category, record.c.relates_to,
                                             sa.func.count()).group_by(record.c.controller_id,
                                                                       record.c.category, record.c.relates_to)).all())


@pytest.mark.airflow
def test_accounting_retention_end_to_end(dagbag, demo_vault, vault_connection, workflow_dirs):
    assert demo_vault.counts()["records"] == 196
    demo_vault.dispose()

    dry = run(dagbag, "accounting_retention", RUN_DAY, dry_run=True)
    assert sum(s["deleted"] for s in sweeps(dry).values()) == OLD_INVOICES - 1
    with Vault.open(vault_connection) as vault:
        assert vault.counts()["records"] == 196

    done = run(dagbag, "accounting_retention", RUN_DAY.replace(day=25))
    by_controller = sweeps(done)
    assert sum(s["deleted"] for s in by_controller.values()) == OLD_INVOICES - 1
    jigowatt_invoices = next(o for o in by_controller["jigowatt"]["by_category"] if o["category"] == "invoice")
    assert jigowatt_invoices["kept_by_legal_hold"] == 1  # the HMRC enquiry's invoice
    with Vault.open(vault_connection) as vault:
        assert vault.counts() == {"records": 196 - OLD_INVOICES + 1, "live_subjects": 72, "data_keys": 72}
        with vault.engine.connect() as conn:
            old = conn.execute(sa.select(sa.func.count()).select_from(record).where(
                record.c.category == "invoice", record.c.relates_to <= date(2019, 3, 31))).scalar_one()
        assert old == 1
        with vault.engine.connect() as conn:
            assert vault.audit.verify(conn).ok

    report = xcom_value(done.run_id, "accounting_retention", "write_retention_report")
    html = Path(report["html"]).read_text()
    assert "7 years from the end of the financial year" in html
    assert "Managing Director, Fenland Cycles" in html  # who gave the instruction
    assert Path(report["deletions_csv"]).read_text().count("invoice") == 4
    engine = metadata_engine()
    with engine.connect() as conn:
        extra = conn.execute(sa.text(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'retention_reports' AND e.source_run_id = :run"), {"run": done.run_id}).scalar()
    engine.dispose()
    assert '"deleted": 23' in extra

    again = run(dagbag, "accounting_retention", RUN_DAY.replace(day=26))
    assert sum(s["deleted"] for s in sweeps(again).values()) == 0


KILL_AFTER_FIRST_BATCH = """
import os, signal, sys
from datetime import datetime
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/plugins"]
from airflow.dag_processing.dagbag import DagBag
from include.vault.store import Vault
real = Vault.destroy_pending_keys  # given the batch's subjects right after each batch commits
calls = []
def destroy_then_die(self, subject_ids=None):
    if subject_ids is not None:
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(self, subject_ids)
Vault.destroy_pending_keys = destroy_then_die
dag = DagBag(dag_folder=sys.argv[1] + "/dags").get_dag("accounting_retention")
dag.test(logical_date=datetime.fromisoformat(sys.argv[2]), run_conf={"dry_run": False, "batch_size": 2})
"""


@pytest.mark.airflow
def test_a_killed_retention_run_is_finished_by_the_next_one(dagbag, demo_vault, vault_connection,
                                                            workflow_dirs):
    demo_vault.dispose()
    child = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_BATCH, str(PROJECT_ROOT),
                            RUN_DAY.isoformat()], env=os.environ.copy(), capture_output=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    partial = invoice_state(vault_connection)
    assert 196 - OLD_INVOICES + 1 < sum(n for *_, n in partial) < 196  # killed halfway
    run(dagbag, "accounting_retention", RUN_DAY.replace(day=25), batch_size=2)
    with Vault.open(vault_connection) as vault:
        assert vault.counts() == {"records": 196 - OLD_INVOICES + 1, "live_subjects": 72, "data_keys": 72}
        with vault.engine.connect() as conn:
            assert vault.audit.verify(conn).ok


def log_lines(directory: Path) -> list[str]:
    lines = []
    for path in sorted(directory.glob("access.log*"), reverse=True):  # oldest rotation first
        data = path.read_bytes()
        lines += (gzip.decompress(data) if path.suffix == ".gz" else data).decode().splitlines()
    return lines


@pytest.mark.airflow
def test_server_log_retention_end_to_end(dagbag, demo_vault, vault_connection, workflow_dirs):
    demo_vault.dispose()
    root = workflow_dirs / "logs"
    seed_demo_logs(root, load_instruction_dir(WorkflowSettings().instructions_dir))
    before = {d.name: log_lines(d) for d in root.iterdir()}

    done = run(dagbag, "server_log_retention", RUN_DAY)
    summaries = {s["controller_id"]: s for s in (
        xcom_value(done.run_id, "server_log_retention", "apply_log_retention", i) for i in range(4))}
    # fenland-cycles: 30 days since June 2026 (90 before); glencoe-outdoor 14; lagan-bakery drops.
    assert summaries["fenland-cycles"]["cutoff"] == "2026-10-25T00:00:00+00:00"
    assert summaries["glencoe-outdoor"]["cutoff"] == "2026-11-10T00:00:00+00:00"
    after = {d.name: log_lines(d) for d in root.iterdir()}
    for controller, lines in after.items():
        cutoff = datetime.fromisoformat(summaries[controller]["cutoff"])
        for old, new in zip(before[controller], lines, strict=False):
            when = datetime.strptime(old.split("[")[1].split("]")[0], "%d/%b/%Y:%H:%M:%S %z")
            if when >= cutoff:
                break
            if controller != "lagan-bakery":
                assert old.split()[0] != new.split()[0] and old.split()[1:] == new.split()[1:]
        kept = [line for line in before[controller]
                if datetime.strptime(line.split("[")[1].split("]")[0], "%d/%b/%Y:%H:%M:%S %z") >= cutoff]
        assert lines[-len(kept):] == kept
        if controller == "lagan-bakery":
            assert lines == kept
    assert len(after["fenland-cycles"]) == len(before["fenland-cycles"])

    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("access.log*")}
    again = run(dagbag, "server_log_retention", RUN_DAY.replace(day=24, hour=4))
    for index in range(4):
        summary = xcom_value(again.run_id, "server_log_retention", "apply_log_retention", index)
        assert all(loc["files_rewritten"] == 0 for loc in summary["locations"])
    assert {p: p.stat().st_mtime_ns for p in root.rglob("access.log*")} == mtimes

"""Goals 4 and 5: the retention sweep against a hand-written DELETE, log anonymisation against grep."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, delete, func, select

from bench.common import ACTOR, CONTROLLER, heading, new_vault, out, progress, server_settings, verdict
from bench.ingest import PgDatabases, PgTarget
from include.demo.shop import demo_log_lines
from include.duties.retention import sweep_expired
from include.stores.serverlogs import WORKERS, apply_to_file
from include.vault.schema import record, record_field
from include.vault.store import NewRecord, Vault

GOAL_DELETE_RATIO = 1.5
GOAL_LOG_RATIO = 0.3
RECORDS_PER_SUBJECT = 10  # a client's invoices
AS_OF = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)


def _invoice(i: int) -> NewRecord:
    subject = i // RECORDS_PER_SUBJECT
    return NewRecord(controller_id=CONTROLLER, category="invoice", purpose="accounting", source="ledger",
                     role="client", relates_to=date(2017, 1 + i % 12, 1 + i % 28),
                     created_at=datetime(2017, 6, 1, tzinfo=UTC),
                     fields={"email": f"client.{subject:07d}@example.co.uk", "invoice_number": f"INV-{i:08d}",
                             "amount_gbp": f"{i % 5000}.00"})


def _hand_written(engine, batch: int) -> int:
    """The baseline: batched DELETEs of the expired rows, with no holds, requests, keys or audit."""
    deleted = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(select(record.c.id).where(
                record.c.category == "invoice", record.c.relates_to <= date(2019, 3, 31))
                .limit(batch)).scalars())
            if not ids:
                return deleted
            conn.execute(delete(record_field).where(record_field.c.record_id.in_(ids)))
            deleted += conn.execute(delete(record).where(record.c.id.in_(ids))).rowcount


def run_delete(workdir: Path, target: PgTarget, *, records: int, batch: int) -> dict | None:
    heading(f"Goal 4 - deleting {records:,} expired records on PostgreSQL: the DAG's code path against a "
            f"hand-written batched DELETE (goal: within {GOAL_DELETE_RATIO}x)")
    dag = PgTarget(target.host, target.port, target.user, target.admin_db,
                   "gdpr_bench_ret_vault", "gdpr_bench_ret_keys")
    try:
        dbs = PgDatabases(dag).__enter__()
    except Exception as exc:  # noqa: BLE001 - no server means skip, said plainly
        out(f"PostgreSQL: SKIPPED - {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        return None
    baseline_db = "gdpr_bench_base_vault"
    try:
        settings = server_settings(workdir / "goal4", dag.url(dag.vault_db), dag.url(dag.keys_db))
        vault = new_vault(settings)
        t0 = time.perf_counter()
        for start in range(0, records, 10_000):
            vault.add_records([_invoice(i) for i in range(start, min(start + 10_000, records))], actor=ACTOR)
            progress(f"{min(start + 10_000, records):,}/{records:,} records seeded")
        vault.dispose()
        out(f"seeded: {records:,} invoices of {records // RECORDS_PER_SUBJECT:,} clients, all past 7 years, "
            f"in {time.perf_counter() - t0:.0f} s; copied for the baseline with CREATE DATABASE ... TEMPLATE")
        with dbs.conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{baseline_db}"')
            cur.execute(f'CREATE DATABASE "{baseline_db}" TEMPLATE "{dag.vault_db}"')
        vault = Vault.open(settings)
        t0 = time.perf_counter()
        report = sweep_expired(vault, controller_id=CONTROLLER, as_of=AS_OF, actor=ACTOR, batch_size=batch)
        dag_s = time.perf_counter() - t0
        with vault.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(record)).scalar_one() == 0
        keys_left = vault.keystore.count()
        vault.dispose()
        baseline_engine = create_engine(dag.url(baseline_db))
        t0 = time.perf_counter()
        baseline = _hand_written(baseline_engine, batch)
        base_s = time.perf_counter() - t0
        baseline_engine.dispose()
        assert report.deleted == baseline == records, (report.deleted, baseline)
        ratio = dag_s / base_s
        out(f"DAG code path (sweep_expired, batches of {batch:,}): {dag_s:.1f} s = {records / dag_s:,.0f} "
            f"records/s; it also checked holds and open requests, destroyed "
            f"{report.outcomes[0].subjects_erased:,} data keys ({keys_left} left) and audited "
            f"{report.batches} batches")
        out(f"hand-written batched DELETE (same batch size, fields then records): {base_s:.1f} s = "
            f"{records / base_s:,.0f} records/s")
        out(f"RESULT goal 4: {ratio:.2f}x the hand-written DELETE vs goal <= {GOAL_DELETE_RATIO}x: "
            f"{verdict(ratio <= GOAL_DELETE_RATIO)}")
        return {"dag_s": dag_s, "base_s": base_s, "ratio": ratio, "met": ratio <= GOAL_DELETE_RATIO}
    finally:
        with dbs.conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{baseline_db}"')
        dbs.__exit__(None, None, None)


def run_logs(workdir: Path, *, megabytes: int) -> dict:
    heading(f"Goal 5 - server-log anonymisation against `grep -c` of an IP over the same file "
            f"(goal: at least {GOAL_LOG_RATIO}x grep's MB/s)")
    lines = "".join(demo_log_lines("bench", -400, 0)).encode()
    data = lines * (megabytes * 2**20 // len(lines) + 1)
    path = workdir / "access.log"
    path.write_bytes(data)
    size = path.stat().st_size / 1e6
    grep_s = min(_timed(["grep", "-c", "203.0.113.9", str(path)]) for _ in range(3))
    anon_s = float("inf")
    for _ in range(3):  # best of 3, as for grep; each on the original file
        path.write_bytes(data)
        os.sync()  # the input's own write-back is not part of the anonymisation
        t0 = time.perf_counter()
        outcome = apply_to_file(path, cutoff=AS_OF, action="anonymise")
        anon_s = min(anon_s, time.perf_counter() - t0)
    ratio = (size / anon_s) / (size / grep_s)
    out(f"file: {size:,.0f} MB of combined-format lines, every one older than the limit")
    out(f"grep -c      : {size / grep_s:,.0f} MB/s (best of 3, file in the page cache)")
    out(f"anonymise    : {size / anon_s:,.0f} MB/s (best of 3; {outcome.lines_changed:,} lines changed, file "
        f"replaced atomically and synced; {WORKERS} blocks at a time)")
    out(f"RESULT goal 5: {ratio:.3f}x grep vs goal >= {GOAL_LOG_RATIO}x: {verdict(ratio >= GOAL_LOG_RATIO)}")
    return {"anon_mbs": size / anon_s, "grep_mbs": size / grep_s, "ratio": ratio, "met": ratio >= GOAL_LOG_RATIO}


def _timed(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - t0

"""Goal 2: bulk ingest with encryption and blind indexes, into SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event

from bench.common import (
    heading,
    ingest,
    make_record,
    new_vault,
    out,
    peak_rss_mib,
    progress,
    server_settings,
    sqlite_settings,
    verdict,
)
from include.crypto.envelope import FieldCipher

GOAL_SQLITE_RATE = 20_000


@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    user: str
    admin_db: str
    vault_db: str = "gdpr_bench_vault"
    keys_db: str = "gdpr_bench_keys"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


class PgDatabases:
    """Throwaway databases (the target's vault and key store unless named), made through a psycopg2
    autocommit connection to admin_db and dropped at the end."""

    def __init__(self, target: PgTarget, names: tuple[str, ...] = ()) -> None:
        self.target = target
        self.names = names or (target.vault_db, target.keys_db)
        self.conn = None
        self.server_version = ""

    def __enter__(self) -> PgDatabases:
        import psycopg2

        self.conn = psycopg2.connect(host=self.target.host, port=self.target.port, user=self.target.user,
                                     dbname=self.target.admin_db, connect_timeout=5)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("SHOW server_version")
            self.server_version = cur.fetchone()[0]
        self._drop()  # a leftover of an interrupted run
        with self.conn.cursor() as cur:
            for name in self.names:
                cur.execute(f'CREATE DATABASE "{name}"')
        return self

    def _drop(self) -> None:
        with self.conn.cursor() as cur:
            for name in self.names:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def __exit__(self, *exc) -> None:
        try:
            self._drop()
        finally:
            self.conn.close()


def breakdown(vault, start: int, count: int, *, chunk: int) -> list[str]:
    """Where add_records spends its time, by instrumenting one extra SQLite ingest.

    Wrappers add a little overhead of their own, so this run is slower than the headline one and is
    reported as shares and us/record, apart from the goal's figure.
    """
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - t0
                calls[name] += 1
        return wrapper

    started: dict[int, float] = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        started[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        match = re.match(r"\s*(INSERT INTO|SELECT|UPDATE|BEGIN)\s*(\w*)", statement, re.I)
        verb = match.group(1).upper() if match else statement.split()[0]
        table = match.group(2) if match and verb == "INSERT INTO" else ""
        name = f"sql {verb.lower()} {table}".strip()
        totals[name] += time.perf_counter() - started.pop(id(cursor), time.perf_counter())
        calls[name] += 1

    original_digest = vault.indexer.digest
    original_create = vault.keystore.create
    original_commit = vault.engine.dialect.do_commit
    original_encrypt = FieldCipher.encrypt_fields
    def digest(field, controller_id, value):
        return timed(f"blind index of {field} (normalise + HMAC)", original_digest)(field, controller_id, value)

    vault.indexer.digest = digest
    vault.keystore.create = timed("data keys (generate, wrap, insert into key store, commit)", original_create)
    vault.engine.dialect.do_commit = timed("sql commit (vault)", original_commit)
    FieldCipher.encrypt_fields = timed("field encryption (FieldCipher.encrypt_fields)", original_encrypt)
    event.listen(vault.engine, "before_cursor_execute", before)
    event.listen(vault.engine, "after_cursor_execute", after)
    try:
        elapsed = 0.0
        for offset in range(start, start + count, chunk):
            batch = [make_record(i) for i in range(offset, min(offset + chunk, start + count))]
            t0 = time.perf_counter()
            vault.add_records(batch, actor="bench")
            elapsed += time.perf_counter() - t0
    finally:
        event.remove(vault.engine, "before_cursor_execute", before)
        event.remove(vault.engine, "after_cursor_execute", after)
        FieldCipher.encrypt_fields = original_encrypt
        del vault.indexer.digest, vault.keystore.create, vault.engine.dialect.do_commit
    lines = [f"where the time goes (instrumented extra ingest of {count:,} records into the same vault, "
             f"{count / elapsed:,.0f} records/s with the wrappers on):"]
    accounted = 0.0
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        accounted += seconds
        per = calls[name] / count
        lines.append(f"  {name:<64} {seconds / count * 1e6:7.1f} us/record {seconds / elapsed:6.1%}  "
                     + (f"({per:.2f} calls/record)" if per >= 0.5 else f"({calls[name]} calls)"))
    rest = elapsed - accounted
    lines.append(f"  {'rest (SQLAlchemy parameter processing, ids, validation, loops)':<64} "
                 f"{rest / count * 1e6:7.1f} us/record {rest / elapsed:6.1%}")
    lines.append(f"  {'total':<64} {elapsed / count * 1e6:7.1f} us/record; the goal's budget is "
                 f"{1e6 / GOAL_SQLITE_RATE:.0f} us/record")
    return lines


def run_sqlite(workdir: Path, *, records: int, chunk: int, breakdown_records: int) -> dict:
    out(f"SQLite: {records:,} records (fields name, email, phone, message; email and phone blind-indexed; "
        f"a new subject per record), add_records in calls of {chunk:,}")
    vault = new_vault(sqlite_settings(workdir / "goal2-sqlite"))
    try:
        result = ingest(vault, 0, records, chunk=chunk, label="SQLite ingest")
        counts = vault.counts()
        cache = len(vault._ciphers)  # diagnostic: the vault's FieldCipher cache after ingest
        assert counts["records"] == records and counts["live_subjects"] == records, counts
        explained = breakdown(vault, records, breakdown_records, chunk=chunk) if breakdown_records else []
    finally:
        vault.dispose()
    db_size = (workdir / "goal2-sqlite" / "vault.db").stat().st_size
    met = result.rate >= GOAL_SQLITE_RATE
    out(f"SQLite  : {result.records:,} records in {result.seconds:.2f} s = {result.rate:,.0f} records/s "
        f"({1e6 / result.rate:.1f} us/record); vault file {db_size / 2**20:,.0f} MiB; "
        f"cipher cache {cache:,} entries; peak RSS so far {peak_rss_mib():,.0f} MiB")
    out(f"RESULT goal 2 (SQLite): {result.rate:,.0f} records/s vs goal >= {GOAL_SQLITE_RATE:,} -> "
        f"ratio {result.rate / GOAL_SQLITE_RATE:.2f}x of goal: {verdict(met)}"
        + ("" if met else f" (short by {GOAL_SQLITE_RATE - result.rate:,.0f} records/s; "
                          f"{GOAL_SQLITE_RATE / result.rate:.2f}x too slow)"))
    for line in explained:
        out(line)
    return {"records": records, "seconds": result.seconds, "rate": result.rate, "met": met}


def run_postgres(workdir: Path, target: PgTarget, *, records: int, chunk: int) -> dict | None:
    try:
        import psycopg2  # noqa: F401
    except ImportError as exc:
        out(f"PostgreSQL: SKIPPED - psycopg2 is not importable ({exc})")
        return None
    try:
        dbs = PgDatabases(target).__enter__()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means skip
        reason = " ".join(str(exc).split()) or type(exc).__name__
        out(f"PostgreSQL: SKIPPED - cannot reach or prepare {target.describe()}/{target.admin_db}: "
            f"{type(exc).__name__}: {reason}")
        return None
    try:
        out(f"PostgreSQL {dbs.server_version} at {target.describe()}: {records:,} records into throwaway "
            f"databases {target.vault_db} (vault) and {target.keys_db} (data keys)")
        vault = new_vault(server_settings(workdir / "goal2-pg", target.url(target.vault_db),
                                          target.url(target.keys_db)))
        try:
            result = ingest(vault, 0, records, chunk=chunk, label="PostgreSQL ingest")
            counts = vault.counts()
        finally:
            vault.dispose()
        assert counts["records"] == records, counts
        out(f"Postgres: {result.records:,} records in {result.seconds:.2f} s = {result.rate:,.0f} records/s "
            f"({1e6 / result.rate:.1f} us/record)  [no goal set; for comparison "
            f"{result.rate / GOAL_SQLITE_RATE:.2f}x of the SQLite goal]")
        return {"records": records, "seconds": result.seconds, "rate": result.rate}
    except Exception as exc:  # noqa: BLE001 - report, do not crash the remaining goals
        out(f"PostgreSQL: FAILED during the run - {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        return None
    finally:
        try:
            dbs.__exit__(None, None, None)
            progress(f"dropped {target.vault_db} and {target.keys_db}")
        except Exception as exc:  # noqa: BLE001
            out(f"PostgreSQL: could not drop the throwaway databases: {exc}")


def run(workdir: Path, *, sqlite_records: int, pg_records: int, chunk: int, pg: PgTarget | None,
        breakdown_records: int) -> dict:
    heading("Goal 2 - bulk ingest with encryption and blind indexes (goal: >= 20,000 records/s on SQLite)")
    results = {"sqlite": run_sqlite(workdir, records=sqlite_records, chunk=chunk,
                                    breakdown_records=breakdown_records)}
    if pg is None:
        out("PostgreSQL: SKIPPED - disabled by --no-postgres")
        results["postgres"] = None
    elif pg_records <= 0:
        out("PostgreSQL: SKIPPED - --pg-records is 0")
        results["postgres"] = None
    else:
        results["postgres"] = run_postgres(workdir, pg, records=pg_records, chunk=chunk)
    return results

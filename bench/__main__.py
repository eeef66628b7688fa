"""`python -m bench`: run the benchmarks once and print each goal next to its figure.

Sizes come from flags, else from BENCH_* environment variables, else the defaults below;
--quick shrinks every default for a smoke run (explicit flags and variables still win).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import dsar, field_crypto, ingest, lookup, retention, throughput
from bench.common import heading, machine_lines, out, peak_rss_mib, verdict

FULL = {"records": 1_000_000, "sqlite_records": 100_000, "pg_records": 50_000, "lookups": 200,
        "repeat": 5, "chunk": 10_000, "breakdown_records": 10_000, "retention_records": 1_000_000,
        "log_mb": 200, "delete_batch": 5000, "dsar_records": 1_000_000, "dsar_customers": 100_000,
        "dsar_log_mb": 1024, "celery_requests": 50}
QUICK = {"records": 20_000, "sqlite_records": 10_000, "pg_records": 5_000, "lookups": 50,
         "repeat": 3, "chunk": 5_000, "breakdown_records": 5_000, "retention_records": 20_000,
         "log_mb": 20, "delete_batch": 5000, "dsar_records": 20_000, "dsar_customers": 5_000, "dsar_log_mb": 50,
         "celery_requests": 20}
ENV = {"records": "BENCH_RECORDS", "sqlite_records": "BENCH_SQLITE_RECORDS",
       "pg_records": "BENCH_PG_RECORDS", "lookups": "BENCH_LOOKUPS", "repeat": "BENCH_REPEAT",
       "chunk": "BENCH_CHUNK", "breakdown_records": "BENCH_BREAKDOWN_RECORDS",
       "retention_records": "BENCH_RETENTION_RECORDS", "log_mb": "BENCH_LOG_MB",
       "delete_batch": "BENCH_DELETE_BATCH", "dsar_records": "BENCH_DSAR_RECORDS",
       "dsar_customers": "BENCH_DSAR_CUSTOMERS", "dsar_log_mb": "BENCH_DSAR_LOG_MB",
       "celery_requests": "BENCH_CELERY_REQUESTS"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                   help=f"smoke-run sizes {QUICK} (env BENCH_QUICK=1)")
    p.add_argument("--records", type=int,
                   help=f"records for goal 3's lookup table (default {FULL['records']:,}; env BENCH_RECORDS)")
    p.add_argument("--sqlite-records", type=int,
                   help=f"records ingested into SQLite for goal 2 (default {FULL['sqlite_records']:,}; "
                        "env BENCH_SQLITE_RECORDS)")
    p.add_argument("--pg-records", type=int,
                   help=f"records ingested into PostgreSQL for goal 2, 0 to skip (default "
                        f"{FULL['pg_records']:,}; env BENCH_PG_RECORDS)")
    p.add_argument("--lookups", type=int, help=f"timed blind-index lookups (default {FULL['lookups']}; "
                                               "env BENCH_LOOKUPS)")
    p.add_argument("--repeat", type=int, help=f"timeit repeats for goal 1, best taken (default "
                                              f"{FULL['repeat']}; env BENCH_REPEAT)")
    p.add_argument("--chunk", type=int, help=f"records per add_records call (default {FULL['chunk']:,}; "
                                             "env BENCH_CHUNK)")
    p.add_argument("--breakdown-records", type=int,
                   help=f"records of the extra, instrumented SQLite ingest that shows where the time goes, "
                        f"0 to skip (default {FULL['breakdown_records']:,}; env BENCH_BREAKDOWN_RECORDS)")
    p.add_argument("--retention-records", type=int,
                   help=f"expired records deleted on PostgreSQL for goal 4 (default {FULL['retention_records']:,}; "
                        "env BENCH_RETENTION_RECORDS)")
    p.add_argument("--delete-batch", type=int, help=f"records per delete batch for goal 4 (default "
                                                    f"{FULL['delete_batch']:,}; env BENCH_DELETE_BATCH)")
    p.add_argument("--log-mb", type=int, help=f"size of goal 5's log file in MiB (default {FULL['log_mb']}; "
                                              "env BENCH_LOG_MB)")
    p.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "40,200,4096"),
                   help="value sizes in bytes for goal 1 (default 40,200,4096; env BENCH_SIZES)")
    p.add_argument("--pg-host", default=os.environ.get("BENCH_PG_HOST", "127.0.0.1"))
    p.add_argument("--pg-port", type=int, default=int(os.environ.get("BENCH_PG_PORT", "5432")))
    p.add_argument("--pg-user", default=os.environ.get("BENCH_PG_USER", "postgres"))
    p.add_argument("--pg-admin-db", default=os.environ.get("BENCH_PG_ADMIN_DB", "test"),
                   help="database to connect to for CREATE/DROP DATABASE (default test)")
    p.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    p.add_argument("--maria-host", default=os.environ.get("BENCH_MARIA_HOST", "127.0.0.1"),
                   help="MariaDB for goal 6's second shop (env BENCH_MARIA_HOST)")
    p.add_argument("--maria-port", type=int, default=int(os.environ.get("BENCH_MARIA_PORT", "3306")))
    p.add_argument("--maria-user", default=os.environ.get("BENCH_MARIA_USER", "root"))
    p.add_argument("--no-mariadb", action="store_true", help="goal 6 on PostgreSQL only")
    p.add_argument("--dsar-records", type=int, help=f"vault records for goals 6-7 (default "
                                                    f"{FULL['dsar_records']:,}; env BENCH_DSAR_RECORDS)")
    p.add_argument("--dsar-customers", type=int, help=f"shop customers for goals 6-7, 10 orders each (default "
                                                      f"{FULL['dsar_customers']:,}; env BENCH_DSAR_CUSTOMERS)")
    p.add_argument("--dsar-log-mb", type=int, help=f"MB of server logs for goals 6-7 (default "
                                                   f"{FULL['dsar_log_mb']:,}; env BENCH_DSAR_LOG_MB)")
    p.add_argument("--celery-requests", type=int,
                   help=f"access requests through the REST API for goal 8 (default {FULL['celery_requests']}; "
                        "env BENCH_CELERY_REQUESTS; 50, not 200, to finish in about a quarter of an hour at "
                        "the rate measured here); Redis at 127.0.0.1:6379, database 14")
    p.add_argument("--only", choices=("1", "2", "3", "4", "5", "6", "8"), action="append",
                   help="run only these goals (repeatable; 6 runs goals 6 and 7); default all")
    p.add_argument("--seed", type=int, default=20240501, help="seed of the lookup targets")
    p.add_argument("--workdir", type=Path, default=os.environ.get("BENCH_WORKDIR"),
                   help="parent of the temporary directory (default the system temp dir)")
    return p


def _resolve(args: argparse.Namespace) -> dict:
    base = QUICK if args.quick else FULL
    sizes = {}
    for name, default in base.items():
        value = getattr(args, name)
        if value is None and os.environ.get(ENV[name]):
            value = int(os.environ[ENV[name]].replace("_", ""))
        sizes[name] = default if value is None else value
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = _resolve(args)
    goals = set(args.only or ("1", "2", "3", "4", "5", "6", "8"))
    started = time.perf_counter()

    out("GDPR vault benchmarks" + (" (QUICK smoke run: sizes are not the goals' sizes)" if args.quick else ""))
    out("=" * 21)
    for line in machine_lines():
        out(line)
    out(f"sizes            : goal 3 table {sizes['records']:,} records; goal 2 SQLite {sizes['sqlite_records']:,}, "
        f"PostgreSQL {sizes['pg_records']:,}; {sizes['lookups']} lookups; timeit best of {sizes['repeat']}; "
        f"add_records calls of {sizes['chunk']:,}")

    pg = None if args.no_postgres else ingest.PgTarget(args.pg_host, args.pg_port, args.pg_user,
                                                       args.pg_admin_db)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="gdpr-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        out(f"work directory   : {workdir} (removed at the end)")
        walls: dict[int, float] = {}
        if "1" in goals:
            t0 = time.perf_counter()
            results[1] = field_crypto.run(workdir, repeat=sizes["repeat"],
                                          sizes=[int(s) for s in args.sizes.split(",") if s.strip()])
            walls[1] = time.perf_counter() - t0
        if "2" in goals:
            t0 = time.perf_counter()
            results[2] = ingest.run(workdir, sqlite_records=sizes["sqlite_records"],
                                    pg_records=sizes["pg_records"], chunk=sizes["chunk"], pg=pg,
                                    breakdown_records=sizes["breakdown_records"])
            walls[2] = time.perf_counter() - t0
        if "3" in goals:
            t0 = time.perf_counter()
            results[3] = lookup.run(workdir, records=sizes["records"], lookups=sizes["lookups"],
                                    chunk=sizes["chunk"], seed=args.seed)
            walls[3] = time.perf_counter() - t0
        if "4" in goals:
            t0 = time.perf_counter()
            results[4] = None if pg is None else retention.run_delete(
                workdir, pg, records=sizes["retention_records"], batch=sizes["delete_batch"])
            walls[4] = time.perf_counter() - t0
        if "5" in goals:
            t0 = time.perf_counter()
            results[5] = retention.run_logs(workdir, megabytes=sizes["log_mb"])
            walls[5] = time.perf_counter() - t0
        if "6" in goals:
            t0 = time.perf_counter()
            maria = None if args.no_mariadb else dsar.MariaTarget(args.maria_host, args.maria_port, args.maria_user)
            results[6] = None if pg is None else dsar.run(
                workdir, pg, vault_records=sizes["dsar_records"], customers_count=sizes["dsar_customers"],
                log_mb=sizes["dsar_log_mb"], maria=maria)
            walls[6] = time.perf_counter() - t0
        if "8" in goals:
            t0 = time.perf_counter()
            results[8] = None if pg is None else throughput.run(workdir, pg, requests=sizes["celery_requests"])
            walls[8] = time.perf_counter() - t0

    heading("Summary")
    if 1 in results:
        w = results[1]["worst"]
        out(f"{'goal 1  per-field crypto within 2x of raw AESGCM':<52}: worst {w['ratio']:.2f}x "
            f"({w['op']} {w['size']}B: {w['vault_us']:.2f} vs {w['raw_us']:.2f} us)  {verdict(w['ratio'] <= 2)}")
    if 2 in results:
        s = results[2]["sqlite"]
        out(f"{'goal 2  SQLite ingest >= 20,000 records/s':<52}: {s['rate']:,.0f} records/s "
            f"({s['rate'] / ingest.GOAL_SQLITE_RATE:.2f}x of goal)  {verdict(s['met'])}")
        p = results[2]["postgres"]
        out(f"{'        PostgreSQL ingest (no goal)':<52}: "
            + (f"{p['rate']:,.0f} records/s" if p else "skipped (see above)"))
    if 3 in results:
        r = results[3]
        out(f"{'goal 3  lookup among ' + format(sizes['records'], ',') + ' records < 5 ms':<52}: median {r['median_ms']:.3f} ms, "
            f"p95 {r['p95_ms']:.3f} ms; full decrypt scan {r['scan_s']:.1f} s = "
            f"{r['scan_s'] * 1e3 / r['median_ms']:,.0f}x  {verdict(r['met'])}")
    if 4 in results:
        r = results[4]
        out(f"{'goal 4  retention delete within 1.5x hand-written':<52}: "
            + (f"{r['ratio']:.2f}x ({r['dag_s']:.1f} s vs {r['base_s']:.1f} s)  {verdict(r['met'])}" if r
               else "skipped (no PostgreSQL)"))
    if 5 in results:
        r = results[5]
        out(f"{'goal 5  log anonymisation >= 0.3x grep -c':<52}: {r['ratio']:.3f}x ({r['anon_mbs']:,.0f} vs "
            f"{r['grep_mbs']:,.0f} MB/s)  {verdict(r['met'])}")
    if 6 in results:
        r = results[6]
        out(f"{'goal 6  one person across all stores, core < ' + format(dsar.GOAL_CORE_S, 'g') + ' s':<52}: "
            + ("; ".join(f"{backend} {f['core_s']:.2f} s with the log index {verdict(f['met_core'])} "
                         f"(without it {f['core_unindexed_s']:.2f} s)"
                         for backend, f in r["backends"].items()) if r else "skipped (no PostgreSQL)"))
        out(f"{'        each identity search < 50 ms (worst)':<52}: "
            + ("; ".join(f"{backend} {f['worst_ms']:.2f} ms ({f['worst']}) {verdict(f['met_search'])}"
                         for backend, f in r["backends"].items()) if r else "skipped (no PostgreSQL)"))
        out(f"{'goal 7  the same through airflow dags test < 60 s':<52}: "
            + (f"{r['airflow_s']:.1f} s  {verdict(r['met_airflow'])}" if r else "skipped (no PostgreSQL)"))
    if 8 in results:
        r = results[8]
        out(f"{'goal 8  access requests an hour, Celery, 2 workers':<52}: "
            + (f"{r['per_hour']:,.0f}/h ({r['requests']} in {r['wall_s']:.0f} s, "
               f"{r['per_hour'] / throughput.GOAL_PER_HOUR:.2f}x of >= {throughput.GOAL_PER_HOUR:,}; tasks by worker "
               + ", ".join(f"{k} {v}" for k, v in r["spread"].items())
               + f"; at most {r['at_once']} runs at once)  {verdict(r['met'])}" if r else "skipped (no PostgreSQL)"))
    out(f"total wall time {time.perf_counter() - started:.0f} s ("
        + ", ".join(f"goal {g} {w:.0f} s" for g, w in walls.items())
        + f"); peak RSS {peak_rss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Goals 6 and 7: gathering one person for an access request across the vault (1,000,000 records), a
shop database on PostgreSQL (1,000,000 orders) and 1 GB of server logs: in the core, and through
`airflow dags test dsar_fulfilment`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert

from bench.common import ACTOR, CONTROLLER, email_of, heading, ingest, new_vault, out, progress, sqlite_settings, verdict
from bench.ingest import PgTarget
from include.datamap.model import load_data_maps
from include.demo_shop import addresses, demo_log_lines, shop_metadata
from include.policies.instructions import load_instruction_dir, record_instructions
from include.requests.gather import Stores, gather_subject
from include.stores.identities import IdentitySet
from include.vault.store import Vault

GOAL_CORE_S = 5.0
GOAL_AIRFLOW_S = 60.0
SHOP_DB = "gdpr_bench_shop"
ORDERS_PER_CUSTOMER = 10
VISITS_PER_IP = 25

INSTRUCTIONS = """\
controller: bench
name: Bench Ltd
region: england-and-wales
instructions:
""" + "".join(f"""  - category: {category}
    purpose: {purpose}
    legal_basis: {basis}
    retention: {rule}
    given_by: Bench Director
    given_on: 2024-02-01
""" + ("    log_action: anonymise\n" if category == "server_log" else "") for category, purpose, basis, rule in (
    ("enquiry", "answering the enquiry", "legitimate_interests", "until the enquiry is closed"),
    ("invoice", "accounting and tax", "legal_obligation", "7 years from the end of the financial year"),
    ("shop_account", "running customers' accounts", "contract", "6 years after the contract ends"),
    ("shop_order", "supplying and accounting for orders", "legal_obligation",
     "7 years from the end of the financial year"),
    ("server_log", "securing the website", "legitimate_interests", "90 days from collection")))

MAPS = {
    "bench-shop.yaml": """\
store: bench-shop
controller: bench
kind: sql
connection: bench_shop
tables:
  customers:
    instruction: shop_account
    primary_key: id
    columns:
      email: {category: contact, identity: email}
      customer_no: {category: account, identity: customer_number}
      first_name: {category: contact}
      last_name: {category: contact}
      last_login_ip: {category: online identifier, identity: ip}
    erasure: {action: mask, mask: {email: "[erased]", customer_no: "[erased]", first_name: null, last_name: null,
                                   last_login_ip: null}}
  addresses:
    instruction: shop_account
    primary_key: id
    references: {customer_id: customers}
    columns:
      line1: {category: postal address}
      postcode: {category: postal address}
    erasure: {action: delete}
  orders:
    instruction: shop_order
    primary_key: id
    references: {customer_id: customers}
    dated_by: placed_at
    columns:
      total_pence: {category: purchase history}
      customer_ip: {category: online identifier, identity: ip}
    erasure: {action: retain, reason: "Art. 17(3)(b): accounting records"}
""",
    "bench-logs.yaml": """\
store: bench-logs
controller: bench
kind: server_logs
logs: {directory: bench, pattern: "access.log*", instruction: server_log}
""",
}


def _ip(customer: int, order: int) -> str:
    return f"10.{customer // 65536 % 256}.{customer // 256 % 256}.{customer % 256}" if order < 0 else \
        f"172.{16 + order % 16}.{customer // 256 % 256}.{customer % 256}"


def _load_shop(url: str, customer_count: int, target: int) -> None:
    engine = create_engine(url)
    shop_metadata.create_all(engine)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            buffer = io.StringIO()
            for c in range(1, customer_count + 1):
                buffer.write(f"{c}\tB{c:07d}\t{email_of(c)}\t\\N\tFirst{c}\tLast{c}\t{_ip(c, -1)}\t\\N\n")
            buffer.seek(0)
            cur.copy_expert("COPY customers FROM STDIN", buffer)
            buffer = io.StringIO()
            for c in range(1, customer_count + 1):
                for o in range(ORDERS_PER_CUSTOMER):
                    order_id = (c - 1) * ORDERS_PER_CUSTOMER + o + 1
                    buffer.write(f"{order_id}\t{c}\t2026-0{1 + o % 9}-1{o % 9} 12:00:00\t{1000 + o}\t{_ip(c, o)}\tcompleted\n")
            buffer.seek(0)
            cur.copy_expert("COPY orders FROM STDIN", buffer)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(insert(addresses).values(id=1, customer_id=target, line1="1 Bench Road", town="Ely",
                                              postcode="CB7 4AA"))
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _write_logs(directory: Path, megabytes: int, target_ips: list[str]) -> int:
    """About `megabytes` of combined-format lines, with VISITS_PER_IP lines of each target address."""
    directory.mkdir(parents=True, exist_ok=True)
    filler = "".join(demo_log_lines(CONTROLLER, -400, 0)).encode()
    blocks = megabytes * 2**20 // len(filler) + 1
    every = max(1, blocks // VISITS_PER_IP)
    planted = 0
    with open(directory / "access.log", "wb") as handle:
        for n in range(blocks):
            handle.write(filler)
            if n % every == 0 and planted < VISITS_PER_IP * len(target_ips):
                for ip in target_ips:
                    handle.write(f'{ip} - - [01/Sep/2026:10:00:00 +0000] "GET /account HTTP/1.1" 200 512 "-" "UA"\n'.encode())
                    planted += 1
    return planted


def run(workdir: Path, pg: PgTarget, *, vault_records: int, customers_count: int, log_mb: int) -> dict:
    heading(f"Goals 6 and 7 - one person across the vault ({vault_records:,} records), a PostgreSQL shop "
            f"({customers_count * ORDERS_PER_CUSTOMER:,} orders) and {log_mb:,} MB of logs (goals: core < "
            f"{GOAL_CORE_S:.0f} s, airflow dags test < {GOAL_AIRFLOW_S:.0f} s)")
    target = min(vault_records, customers_count) // 2 or 1
    email = email_of(target)
    root = workdir / "dsar"
    settings = sqlite_settings(root / "vault")
    vault = new_vault(settings)
    progress(f"vault: {vault_records:,} records")
    ingest(vault, 0, vault_records, chunk=10_000, label="goal 6 vault")
    (root / "instructions").mkdir(parents=True)
    (root / "instructions" / "bench.yaml").write_text(INSTRUCTIONS)
    record_instructions(vault, load_instruction_dir(root / "instructions"), actor=ACTOR, at=datetime.now(UTC))
    vault.dispose()

    admin = create_engine(pg.url(pg.admin_db), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{SHOP_DB}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{SHOP_DB}"')
    try:
        progress(f"shop: {customers_count:,} customers, {customers_count * ORDERS_PER_CUSTOMER:,} orders (COPY)")
        _load_shop(pg.url(SHOP_DB), customers_count, target)
        target_ips = [_ip(target, -1), _ip(target, 3)]
        progress(f"logs: {log_mb:,} MB")
        planted = _write_logs(root / "logs" / "bench", log_mb, target_ips)
        (root / "maps").mkdir()
        for name, text in MAPS.items():
            (root / "maps" / name).write_text(text)
        out(f"seeded: vault {vault_records:,} records; shop {customers_count:,} customers and "
            f"{customers_count * ORDERS_PER_CUSTOMER:,} orders on PostgreSQL; "
            f"{(root / 'logs' / 'bench' / 'access.log').stat().st_size / 1e6:,.0f} MB of logs with {planted} "
            "lines of the person's two addresses")

        shop = create_engine(pg.url(SHOP_DB))
        with Vault.open(settings) as vault:
            stores = Stores(vault, CONTROLLER, load_data_maps(root / "maps"), {"bench_shop": shop}.__getitem__,
                            root / "logs")
            t0 = time.perf_counter()
            results = gather_subject(stores, IdentitySet.given([("email", email)]))
            core_s = time.perf_counter() - t0
        shop.dispose()
        found = {r.store: len(r.records) for r in results}
        assert found["bench-logs"] == planted and found["vault"] >= 1, found
        assert found["bench-shop"] == 1 + 1 + ORDERS_PER_CUSTOMER, found
        out(f"core (gather_subject): {core_s:.2f} s; found {found}")
        out(f"RESULT goal 6: {core_s:.2f} s vs goal < {GOAL_CORE_S:.0f} s: {verdict(core_s < GOAL_CORE_S)}")

        airflow_s = _airflow_dags_test(root, settings, pg.url(SHOP_DB), email)
        out(f"RESULT goal 7: {airflow_s:.1f} s vs goal < {GOAL_AIRFLOW_S:.0f} s: {verdict(airflow_s < GOAL_AIRFLOW_S)}")
        return {"core_s": core_s, "airflow_s": airflow_s, "met_core": core_s < GOAL_CORE_S,
                "met_airflow": airflow_s < GOAL_AIRFLOW_S}
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 f"WHERE datname = '{SHOP_DB}' AND pid <> pg_backend_pid()")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{SHOP_DB}"')
        admin.dispose()


def _airflow_dags_test(root: Path, settings, shop_url: str, email: str) -> float:
    project = Path(__file__).resolve().parent.parent
    home = Path(tempfile.mkdtemp(prefix="airflow-home-", dir=root))
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": os.pathsep.join([str(project), str(project / "plugins")]),
           "AIRFLOW_CONN_GDPR_VAULT_DEFAULT": json.dumps({"conn_type": "gdpr_vault", "extra": {
               "database_url": settings.vault_url, "keystore_url": settings.keystore_url,
               "keyring_path": str(settings.keyring_path)}}),
           "AIRFLOW_CONN_BENCH_SHOP": json.dumps({"conn_type": "gdpr_client_store",
                                                  "extra": {"sqlalchemy_url": shop_url}}),
           "GDPR_INSTRUCTIONS_DIR": str(root / "instructions"), "GDPR_DATAMAPS_DIR": str(root / "maps"),
           "GDPR_SERVER_LOG_ROOT": str(root / "logs"), "GDPR_OUTBOX_DIR": str(root / "outbox"),
           "GDPR_WORK_DIR": str(root / "work")}
    airflow = [sys.executable, "-m", "airflow"]
    progress("airflow db migrate (not timed)")
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    t0 = time.perf_counter()
    done = subprocess.run([*airflow, "dags", "test", "dsar_fulfilment", "-c",
                           json.dumps({"controller": CONTROLLER, "email": email})],
                          env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    packages = list((root / "outbox").rglob("*.gdprpkg"))
    if done.returncode != 0 or len(packages) != 1:
        raise RuntimeError(f"airflow dags test failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    out(f"airflow dags test dsar_fulfilment: {seconds:.1f} s, from the command's start to its exit "
        f"(Airflow's own start-up included); package {packages[0].name}, {packages[0].stat().st_size:,} bytes")
    return seconds

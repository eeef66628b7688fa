"""The canary: a person with unique values (email, phone, name, IP address) goes through every
workflow on a real scheduler and API server, triggered through the REST API, with Airflow's metadata
on SQLite and on PostgreSQL: an access request, a disclosure from the form and one in a batch file,
a rectification of their phone, a restriction, an objection, an erasure, and the scheduled workflows.
Then everything Airflow and the project wrote is searched: every table of the metadata database, the
task log files, the reports, packages, exports and work files on disk, and the stores. Before the
hygiene window the canary may be only in the runs' conf; after it, nowhere but encrypted. A workflow
made to log the canary is caught.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from include.common.settings import VaultSettings, WorkflowSettings
from include.demo.shop import SHOP_CONTROLLER, customers, seed_demo_logs, seed_shop
from include.policies.instructions import load_instruction_dir
from include.vault.schema import disclosure, rights_request
from include.vault.store import NewRecord, Vault
from tests.airflow_server import BACKFILL_TIMEOUT_S, Airflow, connection_json, demo_vault_in
from tests.conftest import PROJECT_ROOT

CANARY = {"email": "canary.q7x3@example.org", "phone": "+447700900377", "phone_written": "07700 900377",
          "name": "Zebedee Quillfeather", "ip": "203.0.113.77",
          # the phone the canary has rectified theirs to, as the form gives it and as the stores keep it
          "phone_rectified_written": "07700 900388", "phone_rectified": "+447700900388"}
# Where the canary may be before the hygiene window: the runs' conf, which the forms fill, and Airflow's
# own log of the API requests that triggered them.
CONF_TABLES = {"dag_run", "log"}


def canary_world(root: Path) -> tuple[VaultSettings, dict[str, str]]:
    """A demo vault and shop with the canary in both, and the canary's visits in the server logs."""
    settings = demo_vault_in(root / "vault")
    with Vault.open(settings) as vault:
        vault.add_records([NewRecord(
            controller_id=SHOP_CONTROLLER, category="client", purpose="supplying the ordered goods or services",
            source="web shop", role="client", relates_to=date(2026, 6, 1),
            fields={"email": CANARY["email"], "phone": CANARY["phone"], "name": CANARY["name"]})], actor="test")
    shop_url = f"sqlite:///{root / 'shop.db'}"
    engine = sa.create_engine(shop_url)
    seed_shop(engine)
    first, last = CANARY["name"].split()
    with engine.begin() as conn:
        conn.execute(sa.insert(customers).values(id=9001, customer_no="C-9001", email=CANARY["email"],
                                                 phone=CANARY["phone_written"], first_name=first, last_name=last,
                                                 last_login_ip=CANARY["ip"], preferences="{}"))
    engine.dispose()
    (root / "inbox").mkdir(parents=True)  # a routine disclosure of the canary, dropped by another system
    (root / "inbox" / "from-accounts.csv").write_text(
        "controller,recipient,email,categories,legal_basis,disclosed_on\n"
        f"{SHOP_CONTROLLER},xero,{CANARY['email']},client,contract,2026-11-23\n")
    logs = root / "logs"
    seed_demo_logs(logs, load_instruction_dir(WorkflowSettings().instructions_dir))
    with (logs / "fenland-cycles" / "access.log").open("a") as handle:
        for hour in range(10, 13):
            when = datetime.now(UTC).replace(hour=hour)
            handle.write(f'{CANARY["ip"]} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET /account HTTP/1.1" 200 512 '
                         '"-" "Mozilla/5.0"\n')
    env = {"AIRFLOW_CONN_GDPR_VAULT_DEFAULT": connection_json(settings),
           "AIRFLOW_CONN_FENLAND_SHOP": json.dumps({"conn_type": "gdpr-client-store",
                                                    "extra": {"sqlalchemy_url": shop_url}}),
           **{f"GDPR_{name}": str(root / sub) for name, sub in (
               ("SERVER_LOG_ROOT", "logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
               ("REPORTS_DIR", "reports"), ("DISCLOSURES_INBOX", "inbox"))}}
    return settings, env | {"SHOP_URL": shop_url}


def canary_places(metadata_url: str, roots: list[Path], store_urls: list[str]) -> dict[str, set[str]]:
    """{place: canary values found there in plain text}: metadata tables, files, store tables."""
    values = set(CANARY.values())
    found: dict[str, set[str]] = {}

    def search(place: str, text: str) -> None:
        if hits := {v for v in values if v in text}:
            found.setdefault(place, set()).update(hits)

    for label, url in [("metadata", metadata_url), *(("store", u) for u in store_urls)]:
        engine = sa.create_engine(url)
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    search(f"{label}:{table.name}", " ".join(
                        v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row))
        engine.dispose()
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            search(f"file:{path.relative_to(root.parent)}", data.decode("latin-1"))
    return found


def run_to_the_end(airflow: Airflow, dag_id: str, conf: dict) -> str:
    """Trigger through the REST API, as an agency's system or staff member would; wait for the end."""
    response = httpx.post(f"http://localhost:{airflow.port}/api/v2/dags/{dag_id}/dagRuns",
                          json={"logical_date": None, "conf": conf}, timeout=60)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    engine = sa.create_engine(airflow.metadata_url)
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    try:
        while True:
            with engine.connect() as conn:
                state = conn.execute(sa.text("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r"),
                                     {"d": dag_id, "r": run_id}).scalar()
            if state in ("success", "failed"):
                return state
            assert time.monotonic() < deadline, f"{dag_id} run {run_id} still {state}"
            time.sleep(2)
    finally:
        engine.dispose()


def airflow_for(tmp_path: Path, metadata_url: str, env: dict[str, str], dags: Path = PROJECT_ROOT / "dags") -> Airflow:
    home = tmp_path / "airflow-home"
    airflow = Airflow(home, {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT),
                             "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                             "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                             "AIRFLOW_CONN_AIRFLOW_METADATA": json.dumps({"conn_type": "generic", "extra": {
                                 "sqlalchemy_url": metadata_url}})}, metadata_url)
    return airflow


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'airflow-home' / 'airflow.db'}"
    return request.getfixturevalue("airflow_metadata_url")


@pytest.mark.airflow
def test_the_canary_is_nowhere_in_plain_text_after_every_workflow_and_the_hygiene(tmp_path, metadata_url):
    settings, env = canary_world(tmp_path / "world")
    shop_url = env.pop("SHOP_URL")
    airflow = airflow_for(tmp_path, metadata_url, env)
    form = {"controller": SHOP_CONTROLLER, "email": CANARY["email"]}
    runs = [
        ("dsar_fulfilment", {**form, "phone": CANARY["phone_written"]}),
        ("third_party_disclosures", {**form, "recipient": "hmcts", "categories": ["client"],
                                     "legal_basis": "legal_obligation", "reference": "CO/2026/0777"}),
        ("subject_rights", {**form, "right": "rectify", "rectify_field": "phone", "phone": CANARY["phone_written"],
                            "corrected_value": CANARY["phone_rectified_written"]}),
        ("subject_rights", {**form, "right": "restrict"}),
        ("subject_rights", {**form, "right": "object", "objection_ground": "direct_marketing"}),
        ("subject_rights", {**form, "right": "erase"}),
        ("accounting_retention", {}), ("server_log_retention", {}), ("enquiry_purge", {}), ("processor_records", {}),
    ]
    try:
        airflow.start()
        states = [(dag_id, run_to_the_end(airflow, dag_id, conf)) for dag_id, conf in runs]
        assert states == [(dag_id, "success") for dag_id, _ in runs]
        with Vault.open(settings) as vault, vault.engine.connect() as conn:  # each right was acted on, not refused
            rights = sorted(conn.execute(sa.select(rights_request.c.kind, rights_request.c.status)
                                         .where(rights_request.c.kind != "access")).all())
            disclosed_to = sorted(conn.execute(sa.select(disclosure.c.recipient_id)).scalars())
        assert rights == [("erase", "completed"), ("object", "completed"), ("rectify", "completed"),
                          ("restrict", "completed")]
        assert disclosed_to == ["hmcts", "xero"] and not list((tmp_path / "world" / "inbox").glob("*.csv"))
        written = [tmp_path / "world" / sub for sub in ("outbox", "reports", "work", "inbox", "logs")]
        stores = [settings.vault_url, settings.keystore_url, shop_url]
        before = canary_places(metadata_url, [tmp_path / "airflow-home", *written], stores)
        # Within the window, the forms' conf is the one place: never XCom, rendered fields, task logs,
        # reports, packages (sealed), the vault (encrypted) or, after the erasure, the shop and logs.
        assert {place for place in before if not place.startswith("file:airflow-home/airflow.db")} == {
            f"metadata:{table}" for table in CONF_TABLES}, before
        assert run_to_the_end(airflow, "airflow_metadata_hygiene", {"window_hours": 0}) == "success"
    finally:
        airflow.stop()
    after = canary_places(metadata_url, [tmp_path / "airflow-home", *written], stores)
    assert {place for place in after if not place.startswith("file:airflow-home/airflow.db")} == set(), after
    with Vault.open(settings) as vault, vault.engine.connect() as conn:
        assert vault.audit.verify(conn).ok


LEAKY_DAG = '''
from airflow.sdk import DAG, task
from datetime import datetime, timezone

with DAG(dag_id="leaky", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    @task
    def careless(**context):
        print("working on", context["params"]["email"])  # what no task here may do
    careless()
'''


@pytest.mark.airflow
def test_a_task_that_logs_the_canary_is_caught(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "leaky.py").write_text(LEAKY_DAG)
    metadata_url = f"sqlite:///{tmp_path / 'airflow-home' / 'airflow.db'}"
    airflow = airflow_for(tmp_path, metadata_url, {}, dags)
    try:
        airflow.start()
        assert run_to_the_end(airflow, "leaky", {"email": CANARY["email"]}) == "success"
    finally:
        airflow.stop()
    places = canary_places(metadata_url, [tmp_path / "airflow-home"], [])
    leaked = {place for place in places if place.startswith("file:airflow-home/logs/")}
    assert leaked and all(CANARY["email"] in places[place] for place in leaked), places

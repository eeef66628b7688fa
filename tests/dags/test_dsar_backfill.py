"""`dsar_fulfilment` on a real scheduler and API server: a backlog imported from CSV is fulfilled by
`airflow backfill create`, and the REST API refuses a request with a malformed email."""

from __future__ import annotations

import json
import os
from datetime import date

import httpx
import pytest
import sqlalchemy as sa

from include.common.settings import WorkflowSettings
from include.demo.shop import SHOP_CONTROLLER, seed_demo_logs, seed_shop, shop_data
from include.policies.instructions import load_instruction_dir
from include.requests.importer import import_requests
from include.requests.register import get_request, requests_received
from include.vault.store import Vault
from tests.airflow_server import Airflow, connection_json, demo_vault_in
from tests.conftest import PROJECT_ROOT
from tests.dags.test_dsar_dag import RUN_DAY

DAYS = [date(2026, 10, 29), date(2026, 10, 30)]


@pytest.mark.airflow
def test_a_backfill_fulfils_an_imported_backlog_and_the_api_refuses_a_malformed_email(tmp_path,
                                                                                    airflow_metadata_url):
    settings = demo_vault_in(tmp_path / "vault")
    shop_url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(shop_url)
    seed_shop(engine)
    engine.dispose()
    seed_demo_logs(tmp_path / "logs", load_instruction_dir(WorkflowSettings().instructions_dir))
    emails = [row["email"] for row in shop_data().rows["customers"][:5]] + ["stranger@example.org"]
    backlog = tmp_path / "backlog.csv"
    backlog.write_text("controller,reference,received_on,email\n" + "".join(
        f"{SHOP_CONTROLLER},B-{n},{DAYS[n % 2]},{email}\n" for n, email in enumerate(emails)))
    with Vault.open(settings) as vault:
        assert import_requests(vault, backlog, actor="test", at=RUN_DAY).rows == 6

    airflow = Airflow(tmp_path / "airflow-home", {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT),
        "AIRFLOW_CONN_GDPR_VAULT_DEFAULT": connection_json(settings),
        "AIRFLOW_CONN_FENLAND_SHOP": json.dumps({"conn_type": "gdpr-client-store",
                                                 "extra": {"sqlalchemy_url": shop_url}}),
        **{f"GDPR_{name}": str(tmp_path / sub) for name, sub in (
            ("SERVER_LOG_ROOT", "logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"), ("REPORTS_DIR", "reports"))}},
        airflow_metadata_url)
    try:
        airflow.start()
        airflow.cli("backfill", "create", "--dag-id", "dsar_fulfilment", "--from-date", DAYS[0].isoformat(),
                    "--to-date", DAYS[-1].isoformat(), "--max-active-runs", "1")
        runs = airflow.wait_for_backfill("dsar_fulfilment", len(DAYS))
        api = f"http://localhost:{airflow.port}/api/v2/dags/dsar_fulfilment/dagRuns"
        refused = httpx.post(api, json={"logical_date": None, "conf": {"controller": SHOP_CONTROLLER,
                                                                        "email": "not-an-address"}}, timeout=30)
        accepted = httpx.post(api, json={"logical_date": None, "conf": {"controller": SHOP_CONTROLLER,
                                                                         "email": emails[0]}}, timeout=30)
    finally:
        airflow.stop()
    assert sorted(day.date() for day in runs) == DAYS

    with Vault.open(settings) as vault:
        requests = [get_request(vault, r) for r in requests_received(vault, DAYS[0], DAYS[-1].replace(day=31),
                                                                     open_only=False)]
        assert len(requests) == 6
        for request in requests:
            assert request.status == "completed", request.reference
            # 29 October: one month is Sunday 29 November, so Monday 30 November; 30 October: Monday 30
            # November itself (St Andrew's Day is a bank holiday in Scotland, not in England and Wales).
            assert request.due_on == date(2026, 11, 30), request.reference
            assert (tmp_path / "outbox" / request.package).exists()
    assert refused.status_code == 400 and "email" in refused.text, refused.text
    assert accepted.status_code == 200, accepted.text

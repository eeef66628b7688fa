"""The scale-out shape for real: an API server, a scheduler, a DAG processor and two Celery workers, with the
metadata on a fresh PostgreSQL database and the broker on Redis, the vault and the shop on PostgreSQL. An
access request and an erasure run end to end through the REST API, their tasks spread over both workers;
then a worker is killed (SIGKILL to its process group) while a task of an access request runs on it, and
the run finishes on the other worker. Everything started is stopped; the databases and the Redis database
are removed or emptied."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.cluster import CeleryCluster
from include.common.settings import WorkflowSettings
from include.demo.shop import SHOP_CONTROLLER, seed_demo_logs, seed_shop, shop_data
from include.policies.instructions import load_instruction_dir
from include.requests.register import get_request
from include.vault.schema import rights_request
from include.vault.store import Vault
from tests.airflow_server import connection_json
from tests.helpers import client_in_both

WORKERS = ["worker-a", "worker-b"]
HELD_TASK = "package_and_deliver"
HOLD_S = 30
SITE = Path(__file__).resolve().parent / "celery_site"
# Recovery in seconds for the test; README's "Scale out" gives the production values.
RECOVERY = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "8",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
    # Longer than any task here, or Redis would hand a running task's message to the other worker.
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "60",
}


def requests_made(settings) -> dict[str, object]:
    """{kind: [request]} of the requests the runs' forms registered (the demo has requests of its own)."""
    with Vault.open(settings) as vault:
        with vault.engine.connect() as conn:
            ids = conn.execute(sa.select(rights_request.c.id).where(rights_request.c.reference.like("airflow:%"))
                               ).scalars().all()
        found: dict[str, list] = {}
        for request_id in ids:
            request = get_request(vault, request_id)
            found.setdefault(request.kind, []).append(request)
        return found


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_requests_spread_over_two_celery_workers_and_survive_losing_one(
        demo_vault, vault_settings, store_urls, airflow_metadata_url, broker_url, tmp_path):
    demo_vault.dispose()
    shop = sa.create_engine(store_urls["copy"])
    seed_shop(shop)
    shop.dispose()
    shared = tmp_path / "var"  # what the machines would share: one folder on one machine
    seed_demo_logs(shared / "server-logs", load_instruction_dir(WorkflowSettings().instructions_dir))
    env = {**os.environ,
           "AIRFLOW_CONN_GDPR_VAULT_DEFAULT": connection_json(vault_settings),
           "AIRFLOW_CONN_FENLAND_SHOP": json.dumps({"conn_type": "gdpr-client-store",
                                                    "extra": {"sqlalchemy_url": store_urls["copy"]}}),
           "CELERY_TEST_HOLD_TASK": HELD_TASK, "CELERY_TEST_HOLD_S": str(HOLD_S),
           **{f"GDPR_{name}": str(shared / sub) for name, sub in (
               ("SERVER_LOG_ROOT", "server-logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
               ("REPORTS_DIR", "reports"), ("DISCLOSURES_INBOX", "disclosures/inbox"))}}
    customers = [row["email"] for row in shop_data().rows["customers"]]
    erased = client_in_both()
    asked, asked_again = [email for email in customers if email != erased][:2]
    cluster = CeleryCluster(tmp_path / "airflow-home", env, airflow_metadata_url, broker_url,
                            settings=RECOVERY, site=SITE)
    try:
        cluster.start(WORKERS)
        cluster.wait_for_dags("dsar_fulfilment", "subject_rights")
        first = [("dsar_fulfilment", cluster.trigger("dsar_fulfilment", {"controller": SHOP_CONTROLLER,
                                                                           "email": asked})),
                 ("subject_rights", cluster.trigger("subject_rights", {"controller": SHOP_CONTROLLER,
                                                                        "email": erased, "right": "erase"}))]
        assert set(cluster.wait_for_runs(first).values()) == {"success"}, cluster.query(
            "SELECT run_id, task_id, map_index, state, hostname FROM task_instance")
        # Where the tasks ran (a gate's question with nobody to ask about is skipped, on no worker).
        spread = dict(cluster.query("SELECT hostname, count(*) FROM task_instance WHERE state = 'success' "
                                    "GROUP BY hostname"))
        assert set(spread) == set(WORKERS), spread

        held = cluster.trigger("dsar_fulfilment", {"controller": SHOP_CONTROLLER, "email": asked_again},
                               run_id="hold-lost-worker")
        victim = cluster.wait_for_task("dsar_fulfilment", held, HELD_TASK, "running", timeout=120)
        cluster.kill(victim)
        [survivor] = set(WORKERS) - {victim}
        assert cluster.wait_for_runs([("dsar_fulfilment", held)]) == {held: "success"}
        [(try_number, state, hostname)] = cluster.query(
            "SELECT try_number, state, hostname FROM task_instance WHERE run_id = :r AND task_id = :t",
            r=held, t=HELD_TASK)
        lost = cluster.query("SELECT try_number, state, hostname FROM task_instance_history "
                             "WHERE run_id = :r AND task_id = :t ORDER BY try_number", r=held, t=HELD_TASK)
    finally:
        cluster.stop()
    assert (state, hostname) == ("success", survivor) and try_number >= 2
    assert lost[0] == (1, "failed", victim), lost

    requests = requests_made(vault_settings)
    assert sorted(requests) == ["access", "erase"] and len(requests["access"]) == 2, requests
    for request in [*requests["access"], *requests["erase"]]:
        assert request.status == "completed", request
        assert (shared / "outbox" / request.package).exists(), request.package
    with Vault.open(vault_settings) as vault:
        assert vault.keystore.fetch([requests["erase"][0].subject_id]) == {}

"""Faults on real services: a shop database that goes away in the middle of an access request's
query and comes back. (A disk that fills up while a package is written: tests/unit/test_full_disk.py; a task
killed with SIGKILL in the middle of a purge and of an erasure: test_retention_dags.py and
test_rights_dag.py.)"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from include.crypto.sealing import open_sealed
from include.demo.shop import SHOP_CONTROLLER, shop_truth
from include.requests.register import get_request, requests_received
from include.vault.store import Vault
from tests.dags.conftest import ACCESS_FORM, metadata_engine, task_states
from tests.dags.test_dsar_dag import RUN_DAY
from tests.faults import TcpProxy
from tests.helpers import client_in_both

PORTS = {"postgresql": 5432, "mariadb": 3306}


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_shop_that_goes_away_mid_request_is_retried_and_the_package_is_complete(dagbag, shop_world, store_urls,
                                                                                  backend, tmp_path, monkeypatch):
    proxy = TcpProxy(PORTS[backend])
    url = sa.engine.make_url(store_urls["copy"]).set(host="127.0.0.1", port=proxy.port)
    if backend == "postgresql":  # the query must cross the proxy in clear for the proxy to see it
        url = url.update_query_dict({"sslmode": "disable"})
    monkeypatch.setenv("AIRFLOW_CONN_FENLAND_SHOP", json.dumps(
        {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": url.render_as_string(hide_password=False)}}))
    dag = dagbag.get_dag("dsar_fulfilment")
    for task in dag.tasks:  # retried soon, so the test does not wait minutes
        monkeypatch.setattr(task, "retry_delay", timedelta(seconds=3))
        monkeypatch.setattr(task, "retry_exponential_backoff", False)
    # The shop goes away while its customers are queried, and comes back when the next try, refused,
    # has failed: the try after that finds it.
    proxy.cut_at = b"FROM customers"
    proxy.on_refusal = proxy.restore
    try:
        run = dag.test(logical_date=RUN_DAY, run_conf={**ACCESS_FORM, "controller": SHOP_CONTROLLER,
                                                       "email": client_in_both()})
    finally:
        proxy.close()
    assert proxy.cut_mid_query.is_set(), "the shop's customers were never queried through the proxy"
    assert run.state == "success", task_states(run.run_id)
    engine = metadata_engine()
    with engine.connect() as conn:  # the shop's search failed, and its retry succeeded
        tries = conn.execute(sa.text("SELECT max(try_number) FROM task_instance WHERE run_id = :r "
                                     "AND task_id = 'search_store'"), {"r": run.run_id}).scalar()
    engine.dispose()
    assert tries >= 2
    with Vault.open(shop_world) as vault:
        (request_id,) = requests_received(vault, date(2026, 11, 24), date(2026, 11, 25), open_only=False)
        request = get_request(vault, request_id)
        files = open_sealed((tmp_path / "outbox" / request.package).read_bytes(), keyring=vault.keyring)
    manifest = json.loads(files["manifest.json"])
    counts = {t["table"]: t["records"] for t in manifest["tables"] if t["store"] == "fenland-shop"}
    truth = shop_truth(client_in_both())
    assert counts == {table: len([r for r in rows if r.get("meta_key") != "newsletter_source"])
                      for table, rows in truth.rows.items() if rows}

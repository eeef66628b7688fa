"""Both WooCommerce maps end to end through Airflow (dag.test), on MariaDB and PostgreSQL: a
registered customer (refunds, the shop's replies to their reviews, usermeta with keys that are not
personal) and a guest. Their packages match the truth table by table; their erasures keep the
account's role, retain orders with the IP address and user agent masked, change no row of anyone
else, and a second erasure changes nothing."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.paths import CONFIG_DIR
from include.crypto.sealing import open_sealed
from include.demo.woocommerce import (
    FOUR_SPELLINGS,
    GUEST,
    LAYOUTS,
    PRIMARY_KEYS,
    WOO_CONNECTION,
    WOO_CONTROLLER,
    seed_woo_shop,
    woo_data,
    woo_person,
    woo_tables,
    woo_truth,
)
from include.requests.register import possible_matches
from include.vault.schema import rights_request
from include.vault.store import Vault
from tests.dags.conftest import task_states

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)
ACCESS = dict.fromkeys(("phone", "customer_number", "received_on"))
RIGHTS = {"rectify_field": None, "corrected_value": None, "phone": None, "objection_ground": "direct_marketing",
          "person_told_on": None, "received_on": None}
ORDERS = {"hpos": "wp_wc_orders", "legacy": "wp_posts"}


@pytest.fixture(params=LAYOUTS)
def layout(request) -> str:
    return request.param


@pytest.fixture
def woo_world(demo_vault, vault_connection, store_urls, layout, tmp_path, monkeypatch):
    """The demo vault (Oak Home's instructions recorded), Oak Home's shop in the layout on the
    backend's spare database behind the connection oak_home_shop, its map, and the workflows'
    directories in tmp_path."""
    engine = sa.create_engine(store_urls["copy"])
    seed_woo_shop(engine, layout)
    monkeypatch.setenv(f"AIRFLOW_CONN_{WOO_CONNECTION.upper()}", json.dumps(
        {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": store_urls["copy"]}}))
    maps = tmp_path / "maps"
    maps.mkdir()
    shutil.copy(CONFIG_DIR / "datamaps" / "templates" / f"woocommerce-{layout}.yaml", maps / "oak-home-shop.yaml")
    monkeypatch.setenv("GDPR_DATAMAPS_DIR", str(maps))
    for name, sub in (("SERVER_LOG_ROOT", "logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
                      ("REPORTS_DIR", "reports")):
        monkeypatch.setenv(f"GDPR_{name}", str(tmp_path / sub))
    demo_vault.dispose()
    yield engine
    engine.dispose()


def dump(engine, layout: str) -> dict[str, dict]:
    with engine.connect() as conn:
        return {name: {row[0]: tuple(row) for row in conn.execute(sa.select(table))}
                for name, table in woo_tables(layout).items()}


def latest_request(settings) -> object:
    with Vault.open(settings) as vault, vault.engine.connect() as conn:
        return conn.execute(sa.select(rights_request).order_by(rights_request.c.id.desc())).first()


def package_rows(settings, outbox: Path, request) -> dict[str, set]:
    """table -> primary keys of the rows in the delivered package's data files of the shop."""
    with Vault.open(settings) as vault:
        files = open_sealed((outbox / request.package).read_bytes(), keyring=vault.keyring)
    found: dict[str, set] = {}
    for name, content in files.items():
        if name.startswith("data/oak-home-shop/") and name.endswith(".json"):
            table = name.split("/")[-1].split(".")[0]
            found.setdefault(table, set()).update(str(row[PRIMARY_KEYS[table]]) for row in json.loads(content))
    return found


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_access_and_erasure_on_woocommerce_match_the_truth(dagbag, woo_world, layout, vault_connection, tmp_path):
    data = woo_data(layout)
    customer, guest = woo_person(FOUR_SPELLINGS), woo_person(GUEST)
    truths = {person.key: woo_truth(data, person.email) for person in (customer, guest)}
    orders = {row[PRIMARY_KEYS[ORDERS[layout]]]: row for row in data.rows[ORDERS[layout]]}
    refund_type = "post_type" if layout == "legacy" else "type"
    assert any(orders[k][refund_type] == "shop_order_refund" for k in truths[customer.key].rows[ORDERS[layout]])
    assert truths[customer.key].held.get("wp_comments") and truths[customer.key].kept_non_personal.get("wp_usermeta")

    for n, person in enumerate((customer, guest)):  # access: exactly the truth, the rest held back for staff
        run = dagbag.get_dag("dsar_fulfilment").test(logical_date=RUN_DAY + timedelta(minutes=n), run_conf={
            **ACCESS, "controller": WOO_CONTROLLER, "email": person.email.upper()})
        assert run.state == "success", task_states(run.run_id)
        request = latest_request(vault_connection)
        truth = truths[person.key]
        assert package_rows(vault_connection, tmp_path / "outbox", request) == {
            table: {str(k) for k in keys} for table, keys in truth.rows.items()}, person.key
        with Vault.open(vault_connection) as vault:
            held = {(m["table_name"], m["row_key"]) for m in possible_matches(vault, request.id)}
        assert held == {(t, str(k)) for t, keys in truth.held.items() for k in keys}, person.key

    for n, person in enumerate((customer, guest)):  # erasure: theirs only, kept orders minimised
        before = dump(woo_world, layout)
        run = dagbag.get_dag("subject_rights").test(logical_date=RUN_DAY + timedelta(minutes=n), run_conf={
            **RIGHTS, "controller": WOO_CONTROLLER, "email": person.email, "right": "erase"})
        assert run.state == "success", task_states(run.run_id)
        after = dump(woo_world, layout)
        mine = {table: {str(k) for k in keys} for table, keys in truths[person.key].rows.items()}
        for table, rows in before.items():
            others = {k: row for k, row in rows.items() if str(k) not in mine.get(table, set())}
            assert {k: after[table].get(k) for k in others} == others, (person.key, table)
        for table, keys in truths[person.key].kept_non_personal.items():  # wp_capabilities and the like stay
            assert {k: after[table][k] for k in keys} == {k: before[table][k] for k in keys}, table
        assert {k for k in mine[ORDERS[layout]] if int(k) in after[ORDERS[layout]]} == mine[ORDERS[layout]]
        if layout == "hpos":
            columns = list(woo_tables(layout)["wp_wc_orders"].c.keys())
            for key in mine["wp_wc_orders"]:
                order = dict(zip(columns, after["wp_wc_orders"][int(key)], strict=True))
                assert not order["ip_address"] and not order["user_agent"], key
        else:
            meta = woo_tables(layout)["wp_postmeta"]
            with woo_world.connect() as conn:
                values = conn.execute(sa.select(meta.c.meta_value).where(
                    meta.c.post_id.in_([int(k) for k in mine["wp_posts"]]),
                    meta.c.meta_key.in_(["_customer_ip_address", "_customer_user_agent"]))).scalars().all()
            assert values and not any(values)
        confirmation = json.loads((tmp_path / "outbox" / latest_request(vault_connection).package)
                                  .with_suffix(".json").read_text())
        held = sum(store["held"] for store in confirmation["stores"])
        assert held == sum(len(keys) for keys in truths[person.key].held.values())

        again = dagbag.get_dag("subject_rights").test(logical_date=RUN_DAY + timedelta(hours=1, minutes=n), run_conf={
            **RIGHTS, "controller": WOO_CONTROLLER, "email": person.email, "right": "erase"})
        assert again.state == "success" and dump(woo_world, layout) == after, person.key

"""The WooCommerce maps on WooCommerce's own schema (both order storages) and on each backend: every
person's search holds exactly their rows and lists exactly the possible matches the truth names;
an erasure keeps account roles, retains orders with the IP address and user agent masked, changes
no row of anyone else, and a second one changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from include.common.paths import CONFIG_DIR
from include.datamap.model import load_data_map
from include.demo.woocommerce import (
    FOUR_SPELLINGS,
    GUEST,
    HOUSEHOLD,
    LAYOUTS,
    SECOND_EMAIL,
    WOO_CONTROLLER,
    seed_woo_shop,
    woo_data,
    woo_people,
    woo_person,
    woo_tables,
    woo_truth,
)
from include.policies.instructions import load_instruction_file
from include.stores.base import Acting
from include.stores.identities import IdentitySet
from include.stores.sql import SqlStore
from include.stores.sql_checks import check_store
from include.vault.instructions import record_instructions

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
TEMPLATES = CONFIG_DIR / "datamaps" / "templates"
ORDERS = {"hpos": "wp_wc_orders", "legacy": "wp_posts"}


@pytest.fixture(params=LAYOUTS)
def layout(request) -> str:
    return request.param


@pytest.fixture
def woo_shop(store_urls, layout):
    engine = sa.create_engine(store_urls["copy"])
    seed_woo_shop(engine, layout)
    yield engine
    engine.dispose()


def woo_store(engine, layout: str) -> SqlStore:
    return SqlStore(load_data_map(TEMPLATES / f"woocommerce-{layout}.yaml"), engine)


def keys(items) -> dict[str, set]:
    tables: dict[str, set] = {}
    for item in items:
        tables.setdefault(item.table, set()).add(item.key)
    return tables


def as_text(truth: dict[str, set]) -> dict[str, set]:
    return {table: {str(key) for key in found} for table, found in truth.items() if found}


def dump(engine, layout: str) -> dict[str, dict]:
    with engine.connect() as conn:
        return {name: {row[0]: tuple(row) for row in conn.execute(sa.select(table))}
                for name, table in woo_tables(layout).items()}


def test_every_persons_search_holds_their_rows_and_lists_the_possible_matches(woo_shop, layout):
    store = woo_store(woo_shop, layout)
    data = woo_data(layout)
    assert check_store(store) == []  # the demo shop has the indexes its map needs
    for person in woo_people():
        truth = woo_truth(data, person.email)
        if truth is None or not truth.rows:
            continue
        result = store.search(IdentitySet.given([("email", person.email.upper())]))
        assert keys(result.records) == as_text(truth.rows), person.key
        assert keys(result.held) == as_text(truth.held), person.key
        shared = {e.value for e in result.identities.of("ip") if e.standing == "shared"}
        assert shared == set(truth.shared_ips), person.key


def test_the_four_spellings_the_guest_and_the_second_email_are_found(woo_shop, layout):
    store, data = woo_store(woo_shop, layout), woo_data(layout)
    for key in (FOUR_SPELLINGS, GUEST, SECOND_EMAIL, *HOUSEHOLD):
        person = woo_person(key)
        result = store.search(IdentitySet.given([("email", f"  {person.email.title()} ")]))
        assert keys(result.records) == as_text(woo_truth(data, person.email).rows), key
    provenance = {r.found_by for r in store.search(IdentitySet.given([("email", woo_person(SECOND_EMAIL).email)])).records}
    assert any("(given in the request)" in p and " -> " in p for p in provenance)


@pytest.mark.parametrize("key", [FOUR_SPELLINGS, GUEST, HOUSEHOLD[0]])
def test_an_erasure_keeps_roles_retains_orders_minimised_and_touches_no_one_else(vault, woo_shop, layout, key):
    record_instructions(vault, [load_instruction_file(CONFIG_DIR / "instructions" / "oak-home.yaml")], actor="test",
                        at=AT)
    store, data = woo_store(woo_shop, layout), woo_data(layout)
    person = woo_person(key)
    truth = woo_truth(data, person.email)
    acting = Acting(WOO_CONTROLLER, "r-1", "test", AT, book=vault.instruction_book())
    before = dump(woo_shop, layout)
    plan = store.plan_erasure(IdentitySet.given([("email", person.email)]), acting)
    outcome = store.apply_erasure(store.erasure_plan(plan.model_dump(mode="json")), acting)
    after = dump(woo_shop, layout)

    mine = {table: {str(k) for k in found} for table, found in truth.rows.items()}
    for table, rows in before.items():  # no row of anyone else changed
        others = {k: row for k, row in rows.items() if str(k) not in mine.get(table, set())}
        assert {k: after[table].get(k) for k in others} == others, table
    for table, found in truth.kept_non_personal.items():  # roles and other non-personal meta stay
        assert {k: after[table][k] for k in found} == {k: before[table][k] for k in found}, table
    orders = woo_tables(layout)[ORDERS[layout]]
    columns = list(orders.c.keys())
    kept_orders = {kept.key for kept in plan.kept if kept.table == ORDERS[layout]}
    assert kept_orders == mine[ORDERS[layout]]  # every order of theirs is kept, for HMRC
    if layout == "hpos":
        for order in kept_orders:
            row = dict(zip(columns, after["wp_wc_orders"][int(order)], strict=True))
            assert not row["ip_address"] and not row["user_agent"], order
    text = repr({t: {k: r for k, r in rows.items() if str(k) in mine.get(t, set())} for t, rows in after.items()})
    for email in truth.identities.get("email", ()):
        assert email not in text.lower()
    assert outcome.held == plan.held and {m.table for m in outcome.held} == set(as_text(truth.held))

    again = store.plan_erasure(IdentitySet.given([("email", person.email)]), acting)
    store.apply_erasure(again, acting)
    assert dump(woo_shop, layout) == after

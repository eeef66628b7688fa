"""Identity resolution on a shop written the way real shops write it, on SQLite, PostgreSQL and
MariaDB: an email in four spellings, a shop's own address on every order note, a household sharing
a phone and an IP address, a refund, a guest. Each person's search holds exactly their own rows
(checked against a truth list per table); the shared values' other rows are held back with their
reason; an erasure changes no row of anyone else (a dump of every other row before and after)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from include.common.errors import InvalidInput
from include.datamap.model import load_data_map
from include.stores.base import Acting
from include.stores.identities import IdentitySet, Standing
from include.stores.sql import SqlStore
from include.stores.sql_checks import check_store
from include.stores.vault import VaultStore
from include.vault.store import NewRecord
from tests.helpers import instruct

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
CONTROLLER = "acme-shop"
SYSTEM = "shop@acme.example"
MAP = """\
store: acme-shop
controller: acme-shop
kind: sql
connection: acme
tables:
  accounts:
    instruction: account
    primary_key: id
    columns:
      email: {category: contact, identity: email}
      name: {category: name}
    erasure: {action: mask, mask: {email: "deleted-{id}@site.invalid", name: null}}
  account_meta:
    instruction: account
    primary_key: id
    references: {account_id: accounts}
    key_value:
      key: meta_key
      value: meta_value
      personal_keys: {billing_email: contact, billing_phone: contact}
      identities: {billing_email: email, billing_phone: phone}
    erasure: {action: delete}
  orders:
    instruction: order
    primary_key: id
    dated_by: placed_at
    references:
      account_id: {table: accounts, none: [0]}
      parent_id: {table: orders, none: [0]}
    columns:
      billing_email: {category: contact, identity: email}
      billing_phone: {category: contact, identity: phone}
      ip: {category: online identifier, identity: ip}
      placed_at: {category: purchase history}
    erasure:
      action: retain
      reason: "Art. 17(3)(b): accounting records"
      mask: {billing_email: "deleted@site.invalid", billing_phone: null, ip: 0}
  notes:
    instruction: order
    primary_key: id
    references: {order_id: orders}
    columns:
      author_email: {category: correspondence, identity: email}
      body: {category: correspondence, free_text: true}
    erasure: {action: mask, mask: {body: "[erased]"}}
  signups:
    instruction: account
    primary_key: id
    columns:
      email: {category: contact, identity: email}
    erasure: {action: delete}
"""

metadata = sa.MetaData()
accounts = sa.Table("accounts", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("email", sa.String(100), unique=True), sa.Column("name", sa.String(100)))
account_meta = sa.Table("account_meta", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                        sa.Column("account_id", sa.Integer, index=True), sa.Column("meta_key", sa.String(64)),
                        sa.Column("meta_value", sa.Text))
orders = sa.Table("orders", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                  sa.Column("account_id", sa.Integer, index=True), sa.Column("parent_id", sa.Integer, index=True),
                  sa.Column("billing_email", sa.String(100), index=True), sa.Column("billing_phone", sa.String(32)),
                  sa.Column("ip", sa.String(45)), sa.Column("placed_at", sa.DateTime))
notes = sa.Table("notes", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("order_id", sa.Integer, index=True), sa.Column("author_email", sa.String(100), index=True),
                 sa.Column("body", sa.Text))
signups = sa.Table("signups", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("email", sa.String(100), index=True))
TABLES = (accounts, account_meta, orders, notes, signups)

ALICE, BOB, CAROL, DAVE = ("alice.petrov@example.com", "bob@example.com", "carol@example.org",
                           "dave.guest@example.net")
NAT_IP = "203.0.113.9"
WHEN = datetime(2025, 6, 1, 12)
ROWS = {
    "accounts": [(1, "Alice.Petrov@Example.com", "Alice Petrov"), (2, BOB, "Bob Brown"),
                 (3, CAROL, "Carol Brown"), (4, "admin@acme.example", "Shop Admin")],
    "account_meta": [(1, 1, "billing_email", " ALICE.PETROV@EXAMPLE.COM "), (2, 1, "role", "customer"),
                     (3, 2, "billing_phone", "01632 960123"), (4, 2, "role", "customer"),
                     (5, 3, "billing_phone", "+441632960123"), (6, 3, "role", "customer"),
                     (7, 4, "role", "administrator")],
    "orders": [(10, 1, 0, "  alice.petrov@example.com  ", "07700 900001", "198.51.100.1", WHEN),
               (20, 2, 0, BOB, "01632 960123", NAT_IP, WHEN), (21, 0, 20, None, None, None, WHEN),
               (30, 3, 0, CAROL, "+44 1632 960123", NAT_IP, WHEN),
               (40, 0, 0, DAVE.upper(), "07700 900004", "198.51.100.4", WHEN)],
    "notes": [(100 + n, order, SYSTEM, "Order status changed from Pending payment to Processing.")
              for n, order in enumerate((10, 20, 21, 30, 40))]
    + [(200, 20, BOB, "Please ring 01632 960123 when you arrive.")],
    "signups": [(1, "alice.PETROV@example.com"), (2, "alicé.petrov@example.com"), (3, "carol@example.org")],
}
# What each person's search must hold, table by table (key-value rows: personal keys only).
TRUTH = {
    ALICE: {"accounts": {1}, "account_meta": {1}, "orders": {10}, "notes": {100}, "signups": {1}},
    BOB: {"accounts": {2}, "account_meta": {3}, "orders": {20, 21}, "notes": {101, 102, 200}},
    CAROL: {"accounts": {3}, "account_meta": {5}, "orders": {30}, "notes": {103}, "signups": {3}},
    DAVE: {"orders": {40}, "notes": {104}},
}
HOUSEHOLD = {BOB: {"account_meta": {5}, "orders": {30}}, CAROL: {"account_meta": {3}, "orders": {20}}}


@pytest.fixture
def shop(store_urls):
    engine = sa.create_engine(store_urls["copy"])
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.insert(table), [dict(zip(table.c.keys(), row, strict=True)) for row in ROWS[table.name]])
    yield engine
    engine.dispose()


def store(shop, tmp_path, *, system_address_declared: bool) -> SqlStore:
    text = MAP + (f"not_identities: {{email: [{SYSTEM}]}}\n" if system_address_declared else "")
    path = tmp_path / "acme-shop.yaml"
    path.write_text(textwrap.dedent(text))
    return SqlStore(load_data_map(path), shop)


def dump(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {t.name: {row[0]: tuple(row) for row in conn.execute(sa.select(t))} for t in TABLES}


def found(result) -> dict[str, set]:
    tables: dict[str, set] = {}
    for record in result.records:
        tables.setdefault(record.table, set()).add(int(record.key))
    return tables


def held(result) -> dict[str, set]:
    tables: dict[str, set] = {}
    for match in result.held:
        tables.setdefault(match.table, set()).add(int(match.key))
    return tables


@pytest.mark.parametrize("person", [ALICE, BOB, CAROL, DAVE])
def test_each_search_holds_exactly_the_persons_own_rows(shop, tmp_path, person):
    result = store(shop, tmp_path, system_address_declared=True).search(IdentitySet.given([("email", person)]))
    assert found(result) == TRUTH[person]
    assert held(result) == HOUSEHOLD.get(person, {})
    for match in result.held:  # why, in words that name no personal value
        assert match.reason.startswith("reached only through a phone that another owner (accounts #")
        assert "01632" not in match.reason and "+44" not in match.reason
    ip = result.identities.get("ip", NAT_IP)
    assert ip is None or ip.standing == Standing.shared


def test_the_four_spellings_of_an_email_in_four_tables_are_all_found(shop, tmp_path):
    result = store(shop, tmp_path, system_address_declared=True).search(
        IdentitySet.given([("email", "ALICE.petrov@example.COM")]))
    spelled = {record.table: record.data for record in result.records}
    assert spelled["accounts"]["email"] == "Alice.Petrov@Example.com"
    assert spelled["account_meta"]["meta_value"] == " ALICE.PETROV@EXAMPLE.COM "
    assert spelled["orders"]["billing_email"] == "  alice.petrov@example.com  "
    assert spelled["signups"]["email"] == "alice.PETROV@example.com"
    # The accented address a case- and accent-insensitive collation matches is another person's.
    assert 2 not in found(result).get("signups", set())


def test_the_shops_own_address_on_every_note_is_shared_never_followed(shop, tmp_path):
    """Undeclared, the system address is found shared and what it reaches is held; declared, it is
    never taken as anyone's identity."""
    undeclared = store(shop, tmp_path, system_address_declared=False).search(IdentitySet.given([("email", DAVE)]))
    assert found(undeclared) == TRUTH[DAVE]
    assert undeclared.identities.get("email", SYSTEM).standing == Standing.shared
    assert held(undeclared) == {"notes": {100, 101, 102, 103}}
    assert all("reached only through a email that another owner" in m.reason for m in undeclared.held)
    declared = store(shop, tmp_path, system_address_declared=True).search(IdentitySet.given([("email", DAVE)]))
    assert declared.identities.get("email", SYSTEM).standing == Standing.excluded and declared.held == []


@pytest.mark.parametrize("person", [ALICE, BOB, CAROL, DAVE])
def test_an_erasure_changes_the_persons_rows_and_no_one_elses(vault, shop, tmp_path, person):
    instruct(vault, CONTROLLER, {"account": "6 years after the contract ends",
                                 "order": "7 years from the end of the financial year"})
    target = store(shop, tmp_path, system_address_declared=False)
    acting = Acting(CONTROLLER, "r-1", "test", AT, book=vault.instruction_book())
    before = dump(shop)
    plan = target.plan_erasure(IdentitySet.given([("email", person)]), acting)
    target.apply_erasure(target.erasure_plan(plan.model_dump(mode="json")), acting)
    after = dump(shop)
    mine = TRUTH[person]
    for table, rows in before.items():
        others = {key: row for key, row in rows.items() if key not in mine.get(table, set())}
        assert {key: after[table].get(key) for key in others} == others, table
    changed = {table: {key for key, row in rows.items() if after[table].get(key) != row} for table, rows in before.items()}
    assert {t: keys for t, keys in changed.items() if keys} == mine
    if person == ALICE:
        assert after["accounts"][1] == (1, "deleted-1@site.invalid", None)
        assert after["orders"][10][3:6] == ("deleted@site.invalid", None, "0")  # kept, minimised
        assert 1 not in after["signups"] and after["account_meta"][2] == before["account_meta"][2]  # the role stays
    kept = {(k.table, k.key) for k in plan.kept}
    assert kept == {("orders", str(key)) for key in mine["orders"]}
    again = target.plan_erasure(IdentitySet.given([("email", person)]), acting)
    target.apply_erasure(again, acting)
    assert dump(shop) == after  # a second erasure changes nothing


def test_two_vault_subjects_sharing_a_phone_each_reach_only_themselves(vault):
    instruct(vault, CONTROLLER, {"enquiry": "until the enquiry is closed"})
    phone = "01632 960123"
    vault.add_records([NewRecord(CONTROLLER, "enquiry", "answering the enquiry", "web form",
                                 {"email": email, "phone": spelled, "name": name})
                       for email, spelled, name in ((BOB, phone, "Bob Brown"), (CAROL, "+441632960123", "Carol Brown"))],
                      actor="test")
    acting = Acting(CONTROLLER, "r-1", "test", AT, book=vault.instruction_book())
    [bob], [carol] = (vault.find_subjects(CONTROLLER, "email", e) for e in (BOB, CAROL))
    store = VaultStore(vault, CONTROLLER)
    result = store.search(IdentitySet.given([("email", BOB)]))
    assert {r.data["email"] for r in result.records} == {BOB}
    assert [(m.key, m.reason) for m in result.held] == [
        (carol, "reached only through a phone that another data subject also holds")]
    # Given by the person themselves, the household phone still reaches only what is theirs alone.
    by_phone = store.search(IdentitySet.given([("email", BOB), ("phone", phone)]))
    assert {r.data["email"] for r in by_phone.records} == {BOB} and [m.key for m in by_phone.held] == [carol]
    plan = store.plan_erasure(IdentitySet.given([("email", BOB)]), acting)
    assert [s.subject_id for s in plan.subjects] == [bob]
    store.apply_erasure(plan, acting)
    assert vault.keystore.fetch([carol]) and vault.read_records(vault.subject_record_ids(carol))[0].fields["email"] == CAROL
    assert vault.keystore.fetch([bob]) == {}


def test_a_live_check_names_a_missing_column_a_missing_index_and_a_unique_column_with_a_constant_mask(
        shop, tmp_path):
    broken = (MAP.replace('mask: {email: "deleted-{id}@site.invalid", name: null}', 'mask: {email: "[erased]", name: null}')
              .replace("      placed_at: {category: purchase history}", "      placed_on: {category: purchase history}"))
    path = tmp_path / "acme-shop.yaml"
    path.write_text(broken)
    target = SqlStore(load_data_map(path), shop)
    line = next(n for n, text in enumerate(broken.splitlines(), 1) if "placed_on" in text)
    assert [str(f) for f in check_store(target)] == [
        f"{path}:{line}: tables.orders.columns.placed_on: column 'placed_on' is not in table 'orders' of store "
        "'acme-shop'"]
    path.write_text(broken.replace("placed_on", "placed_at"))
    findings = [str(f) for f in check_store(SqlStore(load_data_map(path), shop))]
    phone_line = next(n for n, text in enumerate(broken.splitlines(), 1) if "billing_phone: {category" in text)
    mask_line = next(n for n, text in enumerate(broken.splitlines(), 1) if '"[erased]", name: null' in text)
    assert f"{path}:{phone_line}: tables.orders.columns.billing_phone: no index serves the search of orders.billing_phone: " \
           "every request reads the whole table; create one: CREATE INDEX ix_gdpr_orders_billing_phone ON " \
           + ('`orders` (`billing_phone`)' if shop.dialect.name == "mysql" else '"orders" ("billing_phone")') in findings
    assert f"{path}:{mask_line}: tables.accounts.erasure.mask.email: accounts.email is UNIQUE, so the constant mask '[erased]' " \
           "fails on the second erasure; use a per-row template such as 'deleted-{id}@site.invalid', or null" in findings
    dialect = shop.dialect.name
    with shop.begin() as conn:  # the indexes it asks for, made as it says, satisfy it
        for finding in findings:
            if "create one: " in finding:
                conn.exec_driver_sql(finding.split("create one: ")[1])
    left = [str(f) for f in check_store(SqlStore(load_data_map(path), shop))]
    assert not [f for f in left if "no index" in f] and len(left) == 1, (dialect, left)


def test_a_constant_mask_on_a_unique_column_fails_once_clearly_and_changes_nothing(vault, shop, tmp_path):
    instruct(vault, CONTROLLER, {"account": "6 years after the contract ends",
                                 "order": "7 years from the end of the financial year"})
    path = tmp_path / "acme-shop.yaml"
    path.write_text(MAP.replace('mask: {email: "deleted-{id}@site.invalid", name: null}',
                                'mask: {email: "[erased]", name: null}'))
    target = SqlStore(load_data_map(path), shop)
    acting = Acting(CONTROLLER, "r-1", "test", AT, book=vault.instruction_book())
    target.apply_erasure(target.plan_erasure(IdentitySet.given([("email", ALICE)]), acting), acting)
    before = dump(shop)
    with pytest.raises(InvalidInput, match=r"store 'acme-shop' refused the change: it breaks a constraint of the "
                                           r"store \(\w+\); nothing was changed") as refused:
        target.apply_erasure(target.plan_erasure(IdentitySet.given([("email", BOB)]), acting), acting)
    assert "[erased]" not in str(refused.value) and BOB not in str(refused.value)
    assert dump(shop) == before


def test_the_cli_validates_every_map_and_with_live_each_store(shop, tmp_path, capsys):
    from include.admin.cli import main

    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "acme-shop.yaml").write_text(MAP.replace('"deleted-{id}@site.invalid"', '"[erased]"')
                                         .replace("name: {category: name}", "nickname: {category: name}")
                                         .replace("name: null", "nickname: null"))
    (maps / "broken.yaml").write_text("store: broken\ncontroller: acme-shop\nkind: sql\n")
    url = shop.url.render_as_string(hide_password=False)
    assert main(["datamap", "validate", "--directory", str(maps)]) == 1
    out, err = capsys.readouterr()
    assert "acme-shop.yaml: store acme-shop (sql) of controller acme-shop" in out
    assert f"error: {maps / 'broken.yaml'}:1: (file): a sql store needs a connection" in err
    (maps / "broken.yaml").unlink()
    assert main(["datamap", "validate", "--live", "--directory", str(maps), "--connection", f"acme={url}"]) == 1
    out, err = capsys.readouterr()
    assert "tables.accounts.columns.nickname: column 'nickname' is not in table 'accounts'" in err
    assert main(["datamap", "validate", "--live", "--directory", str(maps)]) == 1  # no connection given
    assert "connection: 'acme' is not set here: give AIRFLOW_CONN_ACME or --connection acme=URL" in capsys.readouterr().err
    (maps / "acme-shop.yaml").write_text(MAP.replace('"deleted-{id}@site.invalid"', '"[erased]"'))
    assert main(["datamap", "validate", "--live", "--directory", str(maps), "--connection", f"acme={url}"]) == 1
    out, err = capsys.readouterr()
    assert "no index serves the search of orders.billing_phone" in err
    assert "accounts.email is UNIQUE, so the constant mask '[erased]' fails on the second erasure" in err
    assert "orders: found by email in billing_email, phone in billing_phone; reached by account_id -> accounts " \
           "(owner), parent_id -> orders (owner)" in out
    assert out.rstrip().endswith("problem(s)")


def test_a_live_check_names_an_identity_column_that_is_not_text(shop, tmp_path):
    with shop.begin() as conn:
        conn.execute(sa.text("CREATE TABLE loyalty (id INTEGER PRIMARY KEY, card_no INTEGER)"))
    path = tmp_path / "acme-shop.yaml"
    path.write_text(MAP + "  loyalty:\n    instruction: account\n    primary_key: id\n    columns:\n"
                          "      card_no: {category: account, identity: customer_number}\n    erasure: {action: delete}\n")
    findings = [str(f) for f in check_store(SqlStore(load_data_map(path), shop))]
    assert any("tables.loyalty.columns.card_no: loyalty.card_no has type INTEGER, but a customer_number is "
               "compared as text" in f for f in findings), findings

"""The data map: the demo's maps load, and each kind of error names the file, the line and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from include.common.errors import InvalidInput
from include.common.paths import DEFAULT_DATAMAPS_DIR as DEMO_MAPS
from include.datamap.model import ErasureAction, load_data_map, load_data_maps

GOOD = """\
store: shop
controller: acme
kind: sql
connection: acme_shop
tables:
  customers:
    instruction: account
    primary_key: id
    columns:
      email: {category: contact, identity: email}
    erasure: {action: mask, mask: {email: null}}
  orders:
    instruction: order
    dated_by: placed_at
    primary_key: id
    references: {customer_id: customers}
    columns:
      total: {category: purchases}
    erasure: {action: retain, reason: "Art. 17(3)(b): tax records"}
  lines:
    instruction: order
    primary_key: id
    references: {order_id: orders}
    erasure: {action: delete}
"""


def write(tmp_path: Path, text: str, name: str = "shop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_demo_maps_load_with_chains_key_values_json_and_logs():
    maps = {loaded.content.store: loaded.content for loaded in load_data_maps(DEMO_MAPS)}
    shop = maps["fenland-shop"]
    assert shop.identity_columns("customers") == {"email": "email", "phone": "phone",
                                                  "customer_no": "customer_number", "last_login_ip": "ip"}
    assert [(child, column) for child, column, _ in shop.children("orders")] == [("order_lines", "order_id"),
                                                                                 ("order_notes", "order_id")]
    assert all(reference.owner for _, _, reference in shop.children("customers"))  # the short form owns
    assert shop.tables["orders"].erasure.action == ErasureAction.retain
    assert shop.tables["customer_meta"].key_value.identities == {"billing_phone": "phone"}
    assert shop.tables["customers"].columns["preferences"].json_value
    assert maps["fenland-logs"].logs.directory == "fenland-cycles"


@pytest.mark.parametrize(("change", "line", "message"), [
    (("connection: acme_shop\n", ""), 1, "(file): a sql store needs a connection and at least one table"),
    (("    primary_key: id\n    references: {order_id: orders}", "    primary_key: 7\n    references: {order_id: orders}"),
     22, "tables.lines.primary_key: Input should be a valid string"),
    (("{order_id: orders}", "{order_id: invoices}"), 23, "tables.lines.references.order_id: references table "
                                                         "'invoices', which the map does not describe"),
    (("identity: email", "identity: postcode"), 10, "tables.customers.columns.email.identity: Input should be"),
    (("{action: mask, mask: {email: null}}", '{action: mask, mask: {"e-mail": null}}'), 11,
     "tables.customers.erasure.mask.e-mail: masks 'e-mail', which is not a column name"),
    (("{action: retain, reason: \"Art. 17(3)(b): tax records\"}", "{action: retain}"), 19,
     "tables.orders.erasure: retain needs the legal reason the data is kept for"),
    (("{action: mask, mask: {email: null}}", '{action: mask, mask: {email: "gone-{nope}@x.invalid"}}'), 11,
     "tables.customers.erasure.mask.email: template names 'nope', which is not a column the map gives"),
    (("{action: mask, mask: {email: null}}", '{action: mask, mask: {email: "gone-{id@x.invalid"}}'), 11,
     "tables.customers.erasure: a mask template has an unmatched '{' or '}'"),
    (("    references: {order_id: orders}\n", ""), 21,
     "tables.lines: is never reached: it has no identity column and references no table"),
    (("kind: sql", "kind: ftp"), 3, "kind: Input should be 'sql' or 'server_logs'"),
    (("store: shop", "store: Shop Store"), 1, "store: String should match pattern"),
    (("    erasure: {action: mask, mask: {email: null}}\n  orders",
      "    erasure: {action: mask, mask: {email: null}}\n    colour: red\n  orders"), 12,
     "tables.customers.colour: Extra inputs are not permitted"),
    (("{action: mask, mask: {email: null}}", "{action: delete}"), 11,
     "tables.customers.erasure.action: deletes rows that table 'orders' keeps (through orders.customer_id)"),
    (("    dated_by: placed_at\n", ""), 18, "tables.orders.erasure: retain needs dated_by"),
])
def test_each_error_names_the_file_the_line_and_the_field(tmp_path, change, line, message):
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(InvalidInput) as caught:
        load_data_map(path)
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


def test_broken_yaml_missing_files_and_duplicate_stores_are_named(tmp_path):
    with pytest.raises(InvalidInput, match=r"shop.yaml:3: not valid YAML"):
        load_data_map(write(tmp_path, "store: shop\ntables:\n  - [unclosed\n"))
    with pytest.raises(InvalidInput, match=r"shop.yaml:1: expected a mapping with store"):
        load_data_map(write(tmp_path, "- a list\n"))
    with pytest.raises(InvalidInput, match="data map directory .*missing does not exist"):
        load_data_maps(tmp_path / "missing")
    directory = tmp_path / "maps"
    directory.mkdir()
    write(directory, GOOD, "a.yaml")
    write(directory, GOOD, "b.yaml")
    with pytest.raises(InvalidInput, match=r"b.yaml:1: store: store 'shop' is already described by .*a.yaml"):
        load_data_maps(directory)

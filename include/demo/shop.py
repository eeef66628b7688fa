"""The demo's client shop (Fenland Cycles' web-shop database) and the demo controllers' server logs.

The shop is a plain relational store the agency does not own (nothing in it is encrypted): customers,
addresses, orders, order lines, order notes and a key-value meta table. Some customers are the
vault's demo people of the same controller (the same email), so an access request finds them in
both. Each customer visits the web site from their own addresses; one order of each customer comes
from an address seen nowhere else, so its log lines are reached only through that order. Some order
notes name another customer, whose details an access package must withhold.

`shop_truth` gives, from the generator and not from the store, everything the shop and the logs
hold about one email address: what a complete access package must contain.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from faker import Faker
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from include.common.files import write_atomically
from include.common.yamlfiles import LoadedFile
from include.demo.people import EPOCH, SEED, demo_people
from include.policies.instructions import InstructionFile
from include.stores.sql_checks import search_index

SHOP_CONTROLLER = "fenland-cycles"
SHOP_CONNECTION = "fenland_shop"
NEW_CUSTOMERS = 12  # besides the controller's demo people
VISIT_DAYS = (-40, -10, 5, 30, 60, 75)  # days from EPOCH, spread over the demo's rotated log files

shop_metadata = MetaData()
customers = Table(
    "customers", shop_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_no", String(20), nullable=False),
    Column("email", String(254), nullable=False, index=True),
    Column("phone", String(32)),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("last_login_ip", String(45)),
    Column("preferences", Text),  # JSON text, as many shops keep it
)
addresses = Table(
    "addresses", shop_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False, index=True),
    Column("line1", String(200)),
    Column("town", String(100)),
    Column("postcode", String(10)),
)
orders = Table(
    "orders", shop_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False, index=True),
    Column("placed_at", DateTime, nullable=False),
    Column("total_pence", Integer, nullable=False),
    Column("customer_ip", String(45)),
    Column("status", String(20), nullable=False),
)
order_lines = Table(
    "order_lines", shop_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", ForeignKey("orders.id"), nullable=False, index=True),
    Column("sku", String(40), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price_pence", Integer, nullable=False),
)
order_notes = Table(
    "order_notes", shop_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", ForeignKey("orders.id"), nullable=False, index=True),
    Column("note", Text, nullable=False),
)
customer_meta = Table(
    "customer_meta", shop_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False, index=True),
    Column("meta_key", String(64), nullable=False),
    Column("meta_value", Text),
)
SHOP_TABLES = (customers, addresses, orders, order_lines, order_notes, customer_meta)
_SKUS = ("BIKE-TOURER-54", "HELMET-M", "LOCK-D", "LIGHTS-USB", "TYRE-700x28", "SERVICE-BASIC")


@dataclass
class ShopData:
    rows: dict[str, list[dict]] = field(default_factory=lambda: {t.name: [] for t in SHOP_TABLES})
    ips: dict[int, list[str]] = field(default_factory=dict)  # customer id -> every address they used
    visits: list[tuple[datetime, str, str]] = field(default_factory=list)  # (when, ip, path)


def shop_data() -> ShopData:
    """The shop's rows, generated the same on every call."""
    fake = Faker("en_GB")
    fake.seed_instance(SEED + 7)
    rng = random.Random(f"{SEED}/shop")
    people = [(p.name, p.email, p.phone) for p in demo_people()
              if p.controller_id == SHOP_CONTROLLER and p.role in ("client", "contact")]
    for _ in range(NEW_CUSTOMERS):
        name = fake.unique.name()
        people.append((name, f"{name.lower().replace(' ', '.').replace(chr(39), '')}@{fake.free_email_domain()}",
                       fake.phone_number()))
    data = ShopData()
    ids = {"order": 0, "line": 0, "note": 0, "meta": 0}

    def next_id(kind: str) -> int:
        ids[kind] += 1
        return ids[kind]

    for number, (name, email, phone) in enumerate(people, start=1):
        first, _, last = name.rpartition(" ")
        login_ip, order_ip = (f"198.51.{100 + number // 250}.{number % 250 + 1}",
                              f"203.0.{113 + number // 250}.{number % 250 + 1}")
        data.ips[number] = [login_ip, order_ip]
        data.rows["customers"].append({
            "id": number, "customer_no": f"FC{10000 + number}", "email": email,
            "phone": phone, "first_name": first, "last_name": last, "last_login_ip": login_ip,
            "preferences": json.dumps({"newsletter": rng.random() < 0.5, "frame_size": rng.choice("SML")})})
        data.rows["addresses"].append({"id": number, "customer_id": number, "line1": fake.street_address(),
                                       "town": fake.city(), "postcode": fake.postcode()})
        for n in range(2):
            order_id = next_id("order")
            lines = [(rng.choice(_SKUS), rng.randint(1, 2), rng.randint(500, 90_000)) for _ in range(rng.randint(1, 3))]
            data.rows["orders"].append({
                "id": order_id, "customer_id": number,
                "placed_at": (EPOCH + timedelta(days=rng.randint(-50, 70))).replace(tzinfo=None),
                "total_pence": sum(q * p for _, q, p in lines),
                "customer_ip": order_ip if n == 1 else login_ip, "status": "completed"})
            for sku, quantity, price in lines:
                data.rows["order_lines"].append({"id": next_id("line"), "order_id": order_id, "sku": sku,
                                                 "quantity": quantity, "price_pence": price})
        data.rows["customer_meta"] += [
            {"id": next_id("meta"), "customer_id": number, "meta_key": "birthday",
             "meta_value": fake.date_of_birth(minimum_age=18, maximum_age=80).isoformat()},
            {"id": next_id("meta"), "customer_id": number, "meta_key": "newsletter_source",
             "meta_value": rng.choice(("google", "friend", "magazine"))}]
        if number % 3 == 0:
            data.rows["customer_meta"].append({"id": next_id("meta"), "customer_id": number,
                                               "meta_key": "billing_phone", "meta_value": fake.phone_number()})
        for ip in data.ips[number]:
            for day in VISIT_DAYS:
                when = EPOCH.replace(hour=0) + timedelta(days=day, seconds=rng.randint(0, 86_399))
                data.visits.append((when, ip, rng.choice(("/shop", "/account/orders", "/shop/basket"))))
    # Notes: every customer's first order has one; every fourth names the next customer.
    customers_rows = data.rows["customers"]
    for row in customers_rows:
        first_order = next(o for o in data.rows["orders"] if o["customer_id"] == row["id"])
        text = "Please leave the parcel in the porch."
        if row["id"] % 4 == 0:
            other = customers_rows[row["id"] % len(customers_rows)]
            text = (f"If I am out, my neighbour {other['first_name']} {other['last_name']} "
                    f"({other['email']}) will take it in.")
        data.rows["order_notes"].append({"id": next_id("note"), "order_id": first_order["id"], "note": text})
    return data


# The columns a request searches, each with the index `datamap validate --live` asks for.
SEARCHED = (("customers", "email", "email"), ("customers", "phone", "phone"),
            ("customers", "customer_no", "customer_number"), ("customers", "last_login_ip", "ip"),
            ("orders", "customer_ip", "ip"), ("customer_meta", "meta_key", None))


def seed_shop(engine: Engine) -> int:
    """Create the shop's tables and search indexes and load its rows once; a shop that has customers
    is kept as it is (so that what rights requests changed stays changed). Returns the rows loaded."""
    shop_metadata.create_all(engine)
    data = shop_data()
    with engine.begin() as conn:
        for table_name, column, kind in SEARCHED:
            conn.exec_driver_sql(search_index(engine.dialect.name, table_name, column, kind).replace(
                "CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
        if conn.execute(select(customers.c.id).limit(1)).first():
            return 0
        for table in SHOP_TABLES:
            conn.execute(insert(table), data.rows[table.name])
    return sum(len(rows) for rows in data.rows.values())


def shop_visit_lines(first_day: int, last_day: int) -> list[tuple[datetime, str]]:
    """(time, combined-format line) of the shop's customers' visits between those days from EPOCH."""
    start, end = EPOCH.replace(hour=0) + timedelta(days=first_day), EPOCH.replace(hour=0) + timedelta(days=last_day)
    return [(when, f'{ip} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET {path} HTTP/1.1" 200 4242 "-" '
                   f'"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0"\n')
            for when, ip, path in shop_data().visits if start <= when < end]


@dataclass(frozen=True)
class ShopTruth:
    rows: dict[str, list[dict]]  # table -> the person's rows, personal columns as stored
    ips: list[str]
    visit_count: int
    others_named: list[str]  # other people's names and emails in the person's notes


def shop_truth(email: str) -> ShopTruth | None:
    """What the shop and its logs hold about the customer with this email, or None."""
    data = shop_data()
    customer = next((r for r in data.rows["customers"] if r["email"].lower() == email.lower()), None)
    if customer is None:
        return None
    order_ids = {o["id"] for o in data.rows["orders"] if o["customer_id"] == customer["id"]}
    rows = {
        "customers": [customer],
        "addresses": [r for r in data.rows["addresses"] if r["customer_id"] == customer["id"]],
        "orders": [r for r in data.rows["orders"] if r["id"] in order_ids],
        "order_lines": [r for r in data.rows["order_lines"] if r["order_id"] in order_ids],
        "order_notes": [r for r in data.rows["order_notes"] if r["order_id"] in order_ids],
        "customer_meta": [r for r in data.rows["customer_meta"] if r["customer_id"] == customer["id"]],
    }
    others = []
    for note in rows["order_notes"]:
        for other in data.rows["customers"]:
            if other["id"] != customer["id"] and other["email"] in note["note"]:
                others += [f"{other['first_name']} {other['last_name']}", other["email"]]
    ips = data.ips[customer["id"]]
    return ShopTruth(rows, ips, sum(1 for _, ip, _ in data.visits if ip in ips), others)




# Rotated like logrotate leaves them: days from EPOCH covered by each file, newest first.
DEMO_LOG_FILES = (("access.log", 50, 80), ("access.log.1", 20, 50), ("access.log.2.gz", -60, 20))
_PATHS = ("/", "/shop", "/shop/basket", "/contact", "/quote", "/blog/spring-offers", "/account/orders")
_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/131.0",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1",
           "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0")


def demo_log_lines(controller_id: str, first_day: int, last_day: int) -> list[str]:
    """Combined-format lines, in time order, of visitors to the demo controllers' web sites
    (synthetic addresses), and for the shop's controller its customers' visits."""
    rng = random.Random(f"{SEED}/{controller_id}/{first_day}")
    lines = shop_visit_lines(first_day, last_day) if controller_id == SHOP_CONTROLLER else []
    for day in range(first_day, last_day):
        start = EPOCH.replace(hour=0) + timedelta(days=day)
        for second in sorted(rng.sample(range(86_400), 12)):
            when = start + timedelta(seconds=second)
            host = (f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
                    if rng.random() < 0.85 else
                    f"2001:db8:{rng.randint(0, 0xffff):x}:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xffff):x}")
            lines.append((when, f'{host} - - [{when:%d/%b/%Y:%H:%M:%S} +0000] "GET {rng.choice(_PATHS)} '
                                f'HTTP/1.1" 200 {rng.randint(200, 90_000)} "-" "{rng.choice(_AGENTS)}"\n'))
    return [line for _, line in sorted(lines, key=lambda timed: timed[0])]


def seed_demo_logs(log_root: Path, files: list[LoadedFile[InstructionFile]]) -> int:
    """Write each demo controller's server logs where its instructions say; existing files stay."""
    written = 0
    for loaded in files:
        for location in loaded.content.server_logs:
            directory = location.path(log_root)
            directory.mkdir(parents=True, exist_ok=True)
            for name, first_day, last_day in DEMO_LOG_FILES:
                path = directory / name
                if path.exists():
                    continue
                data = "".join(demo_log_lines(loaded.content.controller, first_day, last_day)).encode()
                write_atomically(path, gzip.compress(data, mtime=0) if name.endswith(".gz") else data,
                                 mode=0o640)
                written += 1
    return written

"""The demo's second client shop: Oak Home Interiors' WooCommerce store, as WordPress and WooCommerce
really write it, in the two layouts a live store can have.

- `hpos`: High-Performance Order Storage (WooCommerce 8.2+ default), compatibility sync off. Orders
  are rows of wp_wc_orders with their addresses, operational data and meta in three side tables;
  each order keeps a placeholder row in wp_posts (post_type `shop_order_placehold`) that reserves its
  ID, so order IDs and post IDs share one sequence. Order notes are wp_comments rows whose
  comment_post_ID is the order's ID.
- `legacy`: orders as posts. An order is a wp_posts row (post_type `shop_order`, a refund
  `shop_order_refund` with post_parent the refunded order) and its data is wp_postmeta rows with
  WooCommerce's keys (`_billing_email`, `_customer_user` holding the account's ID or '0', ...).

Both layouts hold the same world: the same people, accounts, order IDs, order items, notes, reviews
and analytics rows; only where an order's own data lives differs. The tables are WordPress's and
WooCommerce's own (names, types, primary keys and indexes as `dbDelta` creates them, prefix `wp_`),
without foreign keys, as WordPress has none; the extra indexes a GDPR search needs are in
`SEARCH_INDEXES`.

The data has the quirks of a real store: an email address in four spellings in four tables, guests
found only by the billing email typed at checkout (in two cases), a customer whose billing email is
not their account email and who ordered as a guest before registering, two members of one household
sharing a phone number (spelled two ways) and a home IP address, refunds that are orders with no
customer of their own, hundreds of system notes signed with the shop's own address, and the shop
admin's replies to customers' reviews.

`woo_truth` says, from the generator's knowledge of who owns each row and never from a database,
which rows are a person's, which of other people's rows a careful engine must list as possible
matches (and never act on), which IP addresses the person shares, and which of their key-value rows
are not personal.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import string
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import phonenumbers
from faker import Faker
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnDefault,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.dialects import mysql

from include.demo.people import EPOCH, SEED

WOO_CONTROLLER = "oak-home"
WOO_CONNECTION = "oak_home_shop"  # the Airflow connection the data-map templates name
WOO_STORE = "oak-home-shop"
HPOS, LEGACY = "hpos", "legacy"
LAYOUTS = (HPOS, LEGACY)
SHOP_DOMAIN = "oak-home.example"
SHOP_URL = f"https://{SHOP_DOMAIN}"
# WooCommerce signs its own order notes with "woocommerce@" + the site's domain.
SYSTEM_EMAIL = f"woocommerce@{SHOP_DOMAIN}"
# What WordPress's wp_privacy_anonymize_data('email') writes, and WooCommerce's order eraser with it.
ANONYMISED_EMAIL = "deleted@site.invalid"
# Values never taken as a person's identity (the maps' `not_identities`).
NOT_IDENTITIES = {"email": (SYSTEM_EMAIL, ANONYMISED_EMAIL)}
SITE_TIMEZONE = ZoneInfo("Europe/London")  # WordPress keeps local and GMT copies of most dates
HOME_IP = "203.0.113.77"  # the household's NAT'd home address
ADMIN_IP = "192.0.2.10"

# The designated people, by WooPerson.key (emails through woo_person(key).email).
ADMIN = "admin"  # the shop's administrator: author of replies to reviews
FOUR_SPELLINGS = "four-spellings"  # one address spelled four ways in four tables
SECOND_EMAIL = "second-email"  # billing email differs from account email; guest orders before registering
HOUSEHOLD = ("household-a", "household-b")  # one phone number, two spellings; one home IP
GUEST = "guest"  # orders without an account, the email in two cases, and a guest review

# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------

_ID = BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")  # bigint(20) unsigned
_AUTO_ID = _ID.with_variant(Integer(), "sqlite")  # auto_increment: SQLite's rowid needs INTEGER
_LONGTEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_TINYTEXT = Text().with_variant(mysql.TINYTEXT(), "mysql", "mariadb")
_TINYINT = SmallInteger().with_variant(mysql.TINYINT(1), "mysql", "mariadb")
_MONEY = Numeric(26, 8)  # decimal(26,8)
# WordPress creates its tables utf8mb4 with a case-insensitive collation; a GDPR search on MariaDB
# relies on it (see SEARCH_INDEXES).
_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _key(table: str, name: str, *columns: str, unique: bool = False, **lengths: int) -> Index:
    """WordPress's KEY `name` (columns). Index names are per table on MariaDB but per schema on
    PostgreSQL and SQLite, so the table's name leads; prefix lengths (`meta_key(191)`) apply on
    MariaDB, where utf8mb4 needs them, and are left out elsewhere."""
    dialect_options: dict[str, Any] = {"mysql_length": lengths} if lengths else {}
    return Index(f"{table}_{name}", *columns, unique=unique, **dialect_options)


def _users(md: MetaData) -> Table:
    return Table(
        "wp_users", md,
        Column("ID", _AUTO_ID, primary_key=True),
        Column("user_login", String(60), nullable=False, default=""),
        Column("user_pass", String(255), nullable=False, default=""),
        Column("user_nicename", String(50), nullable=False, default=""),
        Column("user_email", String(100), nullable=False, default=""),
        Column("user_url", String(100), nullable=False, default=""),
        Column("user_registered", DateTime, nullable=False),
        Column("user_activation_key", String(255), nullable=False, default=""),
        Column("user_status", Integer, nullable=False, default=0),
        Column("display_name", String(250), nullable=False, default=""),
        _key("wp_users", "user_login_key", "user_login"),
        _key("wp_users", "user_nicename", "user_nicename"),
        _key("wp_users", "user_email", "user_email"),
        **_MYSQL)


def _meta(table: str, key: str, entity: str, key_length: int):
    """A WordPress meta table (id, the entity it describes, meta_key, meta_value), as WordPress and
    WooCommerce create them: usermeta, postmeta, order itemmeta."""
    def make(md: MetaData) -> Table:
        return Table(
            table, md,
            Column(key, _AUTO_ID, primary_key=True),
            Column(entity, _ID, nullable=False, default=0),
            Column("meta_key", String(255)),
            Column("meta_value", _LONGTEXT),
            _key(table, entity, entity),
            _key(table, "meta_key", "meta_key", meta_key=key_length),
            **_MYSQL)
    return make


_usermeta = _meta("wp_usermeta", "umeta_id", "user_id", 191)
_postmeta = _meta("wp_postmeta", "meta_id", "post_id", 191)
_order_itemmeta = _meta("wp_woocommerce_order_itemmeta", "meta_id", "order_item_id", 32)


def _posts(md: MetaData) -> Table:
    return Table(
        "wp_posts", md,
        Column("ID", _AUTO_ID, primary_key=True),
        Column("post_author", _ID, nullable=False, default=0),
        Column("post_date", DateTime, nullable=False),
        Column("post_date_gmt", DateTime, nullable=False),
        Column("post_content", _LONGTEXT, nullable=False, default=""),
        Column("post_title", Text, nullable=False, default=""),
        Column("post_excerpt", Text, nullable=False, default=""),
        Column("post_status", String(20), nullable=False, default="publish"),
        Column("comment_status", String(20), nullable=False, default="open"),
        Column("ping_status", String(20), nullable=False, default="open"),
        Column("post_password", String(255), nullable=False, default=""),
        Column("post_name", String(200), nullable=False, default=""),
        Column("to_ping", Text, nullable=False, default=""),
        Column("pinged", Text, nullable=False, default=""),
        Column("post_modified", DateTime, nullable=False),
        Column("post_modified_gmt", DateTime, nullable=False),
        Column("post_content_filtered", _LONGTEXT, nullable=False, default=""),
        Column("post_parent", _ID, nullable=False, default=0),
        Column("guid", String(255), nullable=False, default=""),
        Column("menu_order", Integer, nullable=False, default=0),
        Column("post_type", String(20), nullable=False, default="post"),
        Column("post_mime_type", String(100), nullable=False, default=""),
        Column("comment_count", BigInteger, nullable=False, default=0),
        _key("wp_posts", "post_name", "post_name", post_name=191),
        _key("wp_posts", "type_status_date", "post_type", "post_status", "post_date", "ID"),
        _key("wp_posts", "post_parent", "post_parent"),
        _key("wp_posts", "post_author", "post_author"),
        **_MYSQL)


def _comments(md: MetaData) -> Table:
    return Table(
        "wp_comments", md,
        Column("comment_ID", _AUTO_ID, primary_key=True),
        Column("comment_post_ID", _ID, nullable=False, default=0),
        Column("comment_author", _TINYTEXT, nullable=False, default=""),
        Column("comment_author_email", String(100), nullable=False, default=""),
        Column("comment_author_url", String(200), nullable=False, default=""),
        Column("comment_author_IP", String(100), nullable=False, default=""),
        Column("comment_date", DateTime, nullable=False),
        Column("comment_date_gmt", DateTime, nullable=False),
        Column("comment_content", Text, nullable=False, default=""),
        Column("comment_karma", Integer, nullable=False, default=0),
        Column("comment_approved", String(20), nullable=False, default="1"),
        Column("comment_agent", String(255), nullable=False, default=""),
        Column("comment_type", String(20), nullable=False, default="comment"),
        Column("comment_parent", _ID, nullable=False, default=0),
        Column("user_id", _ID, nullable=False, default=0),
        _key("wp_comments", "comment_post_ID", "comment_post_ID"),
        _key("wp_comments", "comment_approved_date_gmt", "comment_approved", "comment_date_gmt"),
        _key("wp_comments", "comment_date_gmt", "comment_date_gmt"),
        _key("wp_comments", "comment_parent", "comment_parent"),
        _key("wp_comments", "comment_author_email", "comment_author_email", comment_author_email=10),
        _key("wp_comments", "woo_idx_comment_type", "comment_type"),  # added by WooCommerce 3.0
        **_MYSQL)


def _customer_lookup(md: MetaData) -> Table:
    return Table(
        "wp_wc_customer_lookup", md,
        Column("customer_id", _AUTO_ID, primary_key=True),
        Column("user_id", _ID),  # NULL for a guest
        Column("username", String(60), nullable=False, default=""),
        Column("first_name", String(255), nullable=False, default=""),
        Column("last_name", String(255), nullable=False, default=""),
        Column("email", String(100)),
        Column("date_last_active", DateTime),
        Column("date_registered", DateTime),
        Column("country", String(2), nullable=False, default=""),
        Column("postcode", String(20), nullable=False, default=""),
        Column("city", String(100), nullable=False, default=""),
        Column("state", String(100), nullable=False, default=""),
        _key("wp_wc_customer_lookup", "user_id", "user_id", unique=True),
        _key("wp_wc_customer_lookup", "email", "email"),
        **_MYSQL)


def _order_items(md: MetaData) -> Table:
    return Table(
        "wp_woocommerce_order_items", md,
        Column("order_item_id", _AUTO_ID, primary_key=True),
        Column("order_item_name", Text, nullable=False, default=""),
        Column("order_item_type", String(200), nullable=False, default=""),
        Column("order_id", _ID, nullable=False),
        _key("wp_woocommerce_order_items", "order_id", "order_id"),
        **_MYSQL)


def _wc_orders(md: MetaData) -> Table:
    return Table(
        "wp_wc_orders", md,
        # Not auto_increment: the ID comes from the order's placeholder post.
        Column("id", _ID, primary_key=True, autoincrement=False),
        Column("status", String(20)),
        Column("currency", String(10)),
        Column("type", String(20)),
        Column("tax_amount", _MONEY),
        Column("total_amount", _MONEY),
        Column("customer_id", _ID),
        Column("billing_email", String(320)),
        Column("date_created_gmt", DateTime),
        Column("date_updated_gmt", DateTime),
        Column("parent_order_id", _ID),
        Column("payment_method", String(100)),
        Column("payment_method_title", Text),
        Column("transaction_id", String(100)),
        Column("ip_address", String(100)),
        Column("user_agent", Text),
        Column("customer_note", Text),
        _key("wp_wc_orders", "status", "status"),
        _key("wp_wc_orders", "date_created", "date_created_gmt"),
        _key("wp_wc_orders", "customer_id_billing_email", "customer_id", "billing_email", billing_email=171),
        _key("wp_wc_orders", "billing_email", "billing_email", billing_email=191),
        _key("wp_wc_orders", "type_status_date", "type", "status", "date_created_gmt"),
        _key("wp_wc_orders", "parent_order_id", "parent_order_id"),
        _key("wp_wc_orders", "date_updated", "date_updated_gmt"),
        **_MYSQL)


def _wc_order_addresses(md: MetaData) -> Table:
    return Table(
        "wp_wc_order_addresses", md,
        Column("id", _AUTO_ID, primary_key=True),
        Column("order_id", _ID, nullable=False),
        Column("address_type", String(20)),
        Column("first_name", Text),
        Column("last_name", Text),
        Column("company", Text),
        Column("address_1", Text),
        Column("address_2", Text),
        Column("city", Text),
        Column("state", Text),
        Column("postcode", Text),
        Column("country", Text),
        Column("email", String(320)),
        Column("phone", String(100)),
        _key("wp_wc_order_addresses", "order_id", "order_id"),
        _key("wp_wc_order_addresses", "address_type_order_id", "address_type", "order_id", unique=True),
        _key("wp_wc_order_addresses", "email", "email", email=191),
        _key("wp_wc_order_addresses", "phone", "phone"),
        **_MYSQL)


def _wc_order_operational_data(md: MetaData) -> Table:
    return Table(
        "wp_wc_order_operational_data", md,
        Column("id", _AUTO_ID, primary_key=True),
        Column("order_id", _ID),
        Column("created_via", String(100)),
        Column("woocommerce_version", String(20)),
        Column("prices_include_tax", _TINYINT),
        Column("coupon_usages_are_counted", _TINYINT),
        Column("download_permission_granted", _TINYINT),
        Column("cart_hash", String(100)),
        Column("new_order_email_sent", _TINYINT),
        Column("order_key", String(100)),
        Column("order_stock_reduced", _TINYINT),
        Column("date_paid_gmt", DateTime),
        Column("date_completed_gmt", DateTime),
        Column("shipping_tax_amount", _MONEY),
        Column("shipping_total_amount", _MONEY),
        Column("discount_tax_amount", _MONEY),
        Column("discount_total_amount", _MONEY),
        Column("recorded_sales", _TINYINT),
        _key("wp_wc_order_operational_data", "order_id", "order_id", unique=True),
        _key("wp_wc_order_operational_data", "order_key", "order_key"),
        **_MYSQL)


def _wc_orders_meta(md: MetaData) -> Table:
    return Table(
        "wp_wc_orders_meta", md,
        Column("id", _AUTO_ID, primary_key=True),
        Column("order_id", _ID),
        Column("meta_key", String(255)),
        Column("meta_value", Text),
        _key("wp_wc_orders_meta", "meta_key_value", "meta_key", "meta_value", meta_key=100, meta_value=82),
        _key("wp_wc_orders_meta", "order_id_meta_key_meta_value", "order_id", "meta_key", "meta_value",
             meta_key=100, meta_value=82),
        **_MYSQL)


_COMMON = (_users, _usermeta, _posts, _postmeta, _comments, _customer_lookup, _order_items, _order_itemmeta)
_HPOS_ONLY = (_wc_orders, _wc_order_addresses, _wc_order_operational_data, _wc_orders_meta)


@cache
def _metadata(layout: str) -> MetaData:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    md = MetaData()
    for make in (*_COMMON, *(_HPOS_ONLY if layout == HPOS else ())):
        make(md)
    return md


def woo_tables(layout: str) -> dict[str, Table]:
    """The layout's tables by name. Both have WordPress's tables (products live in wp_posts and
    wp_postmeta either way) and WooCommerce's order items and analytics lookup; `hpos` adds the four
    wp_wc_order* tables."""
    return dict(_metadata(layout).tables)


PRIMARY_KEYS = {name: next(iter(table.primary_key.columns)).name
                for layout in LAYOUTS for name, table in woo_tables(layout).items()}


# ---------------------------------------------------------------------------------------------
# The extra indexes a GDPR search needs
# ---------------------------------------------------------------------------------------------

# On PostgreSQL and SQLite a case-insensitive search compares lower(trim(column)): an expression
# index on exactly that serves it (the query must use the same expression). On a key-value table
# the index is partial, one per identity key (WHERE meta_key = '...'), so long non-identity values
# (session tokens, baskets) never enter it and both planners can match it to a query that names the
# key. On MariaDB the tables' collation (utf8mb4_unicode_ci, case-insensitive and PAD SPACE) makes a
# plain `column = value` ignore case and trailing spaces, and a plain (prefix) index serves it;
# MariaDB has no expression indexes, so a value stored with LEADING spaces (one of the demo's
# orders) is found only by TRIM(column) = value, which no index serves: the engine must scan for it
# or accept missing it. Phone numbers are spelled too many ways for any index ('01632 960123',
# '+441632960123'): an index helps only a search by an exact spelling.
_CI = "lower(trim({}))"
_EMAIL_COLUMNS = (("wp_users", "user_email"), ("wp_comments", "comment_author_email"),
                  ("wp_wc_customer_lookup", "email"), ("wp_wc_orders", "billing_email"),
                  ("wp_wc_order_addresses", "email"))
_PLAIN_COLUMNS = (("wp_comments", "comment_author_IP"), ("wp_comments", "user_id"),  # core has no index on user_id
                  ("wp_wc_orders", "ip_address"))
_META_IDENTITY_KEYS = {  # table -> (email keys, other identity or reference keys)
    "wp_usermeta": (("billing_email",), ("billing_phone", "shipping_phone")),
    "wp_postmeta": (("_billing_email", "Payer PayPal address"),
                    ("_billing_phone", "_shipping_phone", "_customer_ip_address", "_customer_user")),
    "wp_wc_orders_meta": (("Payer PayPal address",), ()),
}


def _search_indexes(backend: str) -> dict[str, tuple[str, ...]]:
    quote = (lambda name: f"`{name}`") if backend == "mariadb" else (lambda name: f'"{name}"')
    found: dict[str, list[str]] = defaultdict(list)

    def add(table: str, name: str, columns: str, where: str = "") -> None:
        found[table].append(f"CREATE INDEX IF NOT EXISTS {table}_gdpr_{name} ON {table} ({columns})"
                            + (f" WHERE {where}" if where else ""))

    if backend == "mariadb":
        # user_email, lookup email, order billing_email and address email already have WooCommerce's
        # keys, and comment_author_email its 10-character prefix key: the collation does the rest.
        for table, column in _PLAIN_COLUMNS:
            add(table, column.lower(), quote(column))
        for table in ("wp_usermeta", "wp_postmeta"):  # wp_wc_orders_meta has meta_key_value already
            add(table, "meta_key_value", f"{quote('meta_key')}(100), {quote('meta_value')}(100)")
        return {table: tuple(ddl) for table, ddl in found.items()}
    for table, column in _EMAIL_COLUMNS:
        add(table, column.lower(), _CI.format(quote(column)))
    for table, column in _PLAIN_COLUMNS:
        add(table, column.lower(), quote(column))
    for table, (email_keys, other_keys) in _META_IDENTITY_KEYS.items():
        for key in (*email_keys, *other_keys):
            expression = _CI.format(quote("meta_value")) if key in email_keys else quote("meta_value")
            name = key.strip("_").lower().replace(" ", "_")
            add(table, name, expression, f"{quote('meta_key')} = '{key}'")
    return {table: tuple(ddl) for table, ddl in found.items()}


# backend ("postgresql", "sqlite", "mariadb") -> table -> CREATE INDEX statements. The seeder runs
# those of the layout's tables; a store being searched needs the same (its DBA creates them).
SEARCH_INDEXES: dict[str, dict[str, tuple[str, ...]]] = {
    backend: _search_indexes(backend) for backend in ("postgresql", "sqlite", "mariadb")}


def search_backend(engine: Engine) -> str:
    """The SEARCH_INDEXES key for an engine (MariaDB reached as mysql+pymysql calls itself mysql)."""
    return "mariadb" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name


# ---------------------------------------------------------------------------------------------
# What the data maps say, which the truth follows (a test checks the YAML templates agree)
# ---------------------------------------------------------------------------------------------

_ADDRESS_FIELDS = ("first_name", "last_name", "company", "address_1", "address_2", "city", "state",
                   "postcode", "country")
_ADDRESS_CATEGORY = {"first_name": "contact", "last_name": "contact", "company": "contact",
                     "email": "contact", "phone": "contact", **{f: "postal address" for f in
                     ("address_1", "address_2", "city", "state", "postcode", "country")}}

USERMETA_PERSONAL_KEYS: dict[str, str] = {
    "nickname": "account", "first_name": "contact", "last_name": "contact", "description": "profile",
    "session_tokens": "online identifier", "last_update": "account activity",
    "wc_last_active": "account activity", "paying_customer": "purchase history",
    "_woocommerce_persistent_cart_1": "shopping basket", "community-events-location": "location",
    **{f"billing_{f}": _ADDRESS_CATEGORY[f] for f in (*_ADDRESS_FIELDS, "email", "phone")},
    **{f"shipping_{f}": _ADDRESS_CATEGORY[f] for f in (*_ADDRESS_FIELDS, "phone")},
}
USERMETA_IDENTITIES = {"billing_email": "email", "billing_phone": "phone", "shipping_phone": "phone"}

ORDERS_META_PERSONAL_KEYS: dict[str, str] = {
    "Payer PayPal address": "contact", "Payer first name": "contact", "Payer last name": "contact",
    "_stripe_customer_id": "payment details", "_wc_order_attribution_user_agent": "online identifier",
    "_wc_order_attribution_session_entry": "browsing history",
    "_wc_order_attribution_session_start_time": "browsing history",
    "_refund_amount": "purchase history", "_refund_reason": "correspondence",
}
ORDERS_META_IDENTITIES = {"Payer PayPal address": "email"}

POSTMETA_PERSONAL_KEYS: dict[str, str] = {
    **{f"_billing_{f}": _ADDRESS_CATEGORY[f] for f in (*_ADDRESS_FIELDS, "email", "phone")},
    **{f"_shipping_{f}": _ADDRESS_CATEGORY[f] for f in (*_ADDRESS_FIELDS, "phone")},
    "_billing_address_index": "contact", "_shipping_address_index": "postal address",
    "_customer_ip_address": "online identifier", "_customer_user_agent": "online identifier",
    "_order_key": "online identifier", "_order_total": "purchase history", "_payment_method_title": "payment details",
    "_transaction_id": "payment details", "_paid_date": "purchase history",
    "_completed_date": "purchase history",
    **ORDERS_META_PERSONAL_KEYS,
}
POSTMETA_IDENTITIES = {"_billing_email": "email", "_billing_phone": "phone", "_shipping_phone": "phone",
                       "_customer_ip_address": "ip", **ORDERS_META_IDENTITIES}

KEY_VALUE = {  # table -> (key column, value column, personal keys, identity keys)
    HPOS: {"wp_usermeta": ("meta_key", "meta_value", USERMETA_PERSONAL_KEYS, USERMETA_IDENTITIES),
           "wp_wc_orders_meta": ("meta_key", "meta_value", ORDERS_META_PERSONAL_KEYS, ORDERS_META_IDENTITIES)},
    LEGACY: {"wp_usermeta": ("meta_key", "meta_value", USERMETA_PERSONAL_KEYS, USERMETA_IDENTITIES),
             "wp_postmeta": ("meta_key", "meta_value", POSTMETA_PERSONAL_KEYS, POSTMETA_IDENTITIES)},
}
IDENTITY_COLUMNS = {  # table -> identity column -> kind
    HPOS: {"wp_users": {"user_email": "email"},
           "wp_comments": {"comment_author_email": "email", "comment_author_IP": "ip"},
           "wp_wc_customer_lookup": {"email": "email"},
           "wp_wc_orders": {"billing_email": "email", "ip_address": "ip"},
           "wp_wc_order_addresses": {"email": "email", "phone": "phone"}},
    LEGACY: {"wp_users": {"user_email": "email"},
             "wp_comments": {"comment_author_email": "email", "comment_author_IP": "ip"},
             "wp_wc_customer_lookup": {"email": "email"}},
}
ORDER_TYPES = ("shop_order", "shop_order_refund")
MAP_SCOPE = {  # table -> the map's table-level `when`
    HPOS: {"wp_comments": {"comment_type": ("order_note", "review")}},
    LEGACY: {"wp_comments": {"comment_type": ("order_note", "review")}, "wp_posts": {"post_type": ORDER_TYPES}},
}
MAP_TABLES = {
    HPOS: ("wp_users", "wp_usermeta", "wp_wc_customer_lookup", "wp_wc_orders", "wp_wc_order_addresses",
           "wp_wc_order_operational_data", "wp_wc_orders_meta", "wp_woocommerce_order_items",
           "wp_woocommerce_order_itemmeta", "wp_comments"),
    LEGACY: ("wp_users", "wp_usermeta", "wp_wc_customer_lookup", "wp_posts", "wp_postmeta",
             "wp_woocommerce_order_items", "wp_woocommerce_order_itemmeta", "wp_comments"),
}
# References that are not an owner's: the parent's rows reach these children, which stay their author's.
NON_OWNER_REFERENCES = {HPOS: {"wp_comments": ("comment_parent", "wp_comments")},
                        LEGACY: {"wp_comments": ("comment_parent", "wp_comments")}}


# ---------------------------------------------------------------------------------------------
# Normalisation, as the truth applies it
# ---------------------------------------------------------------------------------------------

def normalised_email(value: object) -> str | None:
    text = str(value).strip().lower() if value is not None else ""
    return text or None


def normalised_phone(value: object) -> str | None:
    if value is None or not str(value).strip():
        return None
    try:
        number = phonenumbers.parse(str(value), "GB")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalised_ip(value: object) -> str | None:
    try:
        return ipaddress.ip_address(str(value).strip()).compressed if value else None
    except ValueError:
        return None


NORMALISE = {"email": normalised_email, "phone": normalised_phone, "ip": normalised_ip}


# ---------------------------------------------------------------------------------------------
# The people
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WooPerson:
    key: str  # ADMIN, FOUR_SPELLINGS, ..., "customer-07", "guest-3"
    role: str  # admin, customer (has an account) or guest
    name: str
    email: str  # the address they would give in a request, lower case
    emails: tuple[str, ...]  # every address they used, normalised (strip, lower case)
    phone: str | None  # E.164
    user_id: int | None  # their wp_users ID; None for a guest


_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
    "Mobile/15E148 Safari/604.1",
)
_PRODUCTS = (  # name, SKU, price including VAT
    ("Oak Side Table", "OH-TBL-SIDE", "149.00"), ("Linen Cushion Cover", "OH-CUSH-LIN", "24.00"),
    ("Wool Throw", "OH-THR-WOOL", "65.00"), ("Ceramic Table Lamp", "OH-LMP-CER", "89.00"),
    ("Oak Bookshelf", "OH-SHF-OAK", "329.00"), ("Rattan Mirror", "OH-MIR-RAT", "120.00"),
    ("Jute Rug 160x230", "OH-RUG-JUT", "189.00"), ("Stoneware Vase", "OH-VAS-STN", "32.00"),
    ("Oak Dining Bench", "OH-BNC-OAK", "275.00"), ("Brass Candle Holder", "OH-CND-BRS", "18.00"),
    ("Velvet Armchair", "OH-CHR-VEL", "499.00"), ("Scented Candle - Fig", "OH-CND-FIG", "22.00"),
)
_SHIPPING = (("Royal Mail Tracked 48", "flat_rate", "1", "4.95"), ("Furniture delivery", "flat_rate", "2", "39.00"),
             ("Free shipping", "free_shipping", "3", "0.00"))
_PAYMENTS = (("stripe", "Credit / Debit Card"), ("paypal", "PayPal"), ("bacs", "Direct bank transfer"))
_WC_VERSIONS = {2017: "3.2.6", 2018: "3.4.5", 2019: "3.8.1", 2020: "4.8.0", 2021: "5.9.0", 2022: "7.2.2",
                2023: "8.3.1", 2024: "9.4.2", 2025: "9.9.5", 2026: "10.1.0"}
_REFUND_REASONS = ("Item arrived damaged", "Changed mind - returned unused", "Wrong colour sent",
                   "Delivery charge refunded: late delivery")
_CUSTOMER_NOTES = ("Please leave with a neighbour if I'm out.",
                   "Side gate is unlocked - please leave by the back door.",
                   "Gift - please don't include the receipt.", "Please call before delivery, the doorbell is broken.")
_REVIEWS = ("Lovely quality, arrived quickly and well packed.", "Exactly as pictured. Very happy with it.",
            "Good value, though the colour is a little darker than on screen.", "Beautiful finish - worth every penny.",
            "Took a while to arrive but it was worth the wait.", "Solid and well made; assembly took ten minutes.")
_ATTRIBUTION_SINCE = datetime(2024, 1, 15, tzinfo=UTC)  # WooCommerce 8.5 began recording order attribution
_INSTALLED = datetime(2017, 11, 6, 10, 12, tzinfo=UTC)
_LANDLINES = (("01632", "960"), ("020", "7946 0"), ("0161", "496 0"), ("0113", "496 0"), ("0117", "496 0"))
_HOUSEHOLD_PHONES = ("01632 960123", "+441632960123")


def _money(value: Decimal | str | float) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _local(moment: datetime) -> datetime:
    """WordPress's local copy of a UTC moment (naive, as MySQL datetime holds it)."""
    return moment.astimezone(SITE_TIMEZONE).replace(tzinfo=None)


def _gmt(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _spell_phone(national: str, style: int) -> str:
    """One number in the ways people type it: national spaced, E.164, international spaced, compact."""
    digits = national.replace(" ", "")
    area, _, local = national.partition(" ")
    return (national, "+44" + digits[1:], f"+44 {area[1:]} {local}", digits)[style % 4]


@dataclass
class _Refund:
    amount: Decimal
    reason: str
    created: datetime
    full: bool
    id: int = 0


@dataclass
class _Order:
    person: str
    customer_id: int  # 0: a guest order
    created: datetime
    email: str  # as typed: wc_orders.billing_email and _billing_email
    address_email: str  # wp_wc_order_addresses.email
    billing: dict[str, str]
    shipping: dict[str, str]
    ip: str
    ua: str
    lines: list[tuple[int, int]]  # (product index, quantity)
    shipping_method: tuple[str, str, str, str]
    payment: tuple[str, str]
    status: str
    customer_note: str
    refund: _Refund | None = None
    id: int = 0
    key: str = ""
    cart_hash: str = ""
    transaction_id: str = ""


_Row = dict[str, Any]  # a table's row: column -> value
_Event = tuple[datetime, int, _Row, str, int | None]  # a comment: (when, number, row, owner, parent's number)


@dataclass
class _World:
    people: list[WooPerson]
    users: list[_Row]  # wp_users rows
    usermeta: list[tuple[int, str, str, str]]  # (user_id, key, value, owner)
    lookups: list[tuple[_Row, str]]
    orders: list[_Order]
    comments: list[tuple[_Row, str | None]]
    posts: list[_Row]  # pages and products
    product_ids: list[int]
    admin_id: int


@dataclass
class _Spec:
    """What the generator decides about a person before writing any row."""
    role: str
    first: str
    last: str
    phone: str  # as typed
    address: dict[str, str]
    email: str
    mixed: str  # the email as capitalised as the name
    ips: list[str]
    ua: str
    email2: str = ""  # SECOND_EMAIL's other address


def _email_local(first: str, last: str) -> str:
    clean = lambda text: "".join(c for c in text if c.isalnum() or c == "-")  # noqa: E731
    return f"{clean(first)}.{clean(last)}"


def _phone_of(number: int, key: str, mobile: int) -> str:
    """The person's phone number as they type it."""
    if key in HOUSEHOLD:
        return _HOUSEHOLD_PHONES[HOUSEHOLD.index(key)]
    if number % 3 == 0:  # Ofcom's drama ranges: numbers that are never anyone's
        area, rest = _LANDLINES[number % len(_LANDLINES)]
        suffix = 124 if (area, mobile) == ("01632", 123) else mobile
        return _spell_phone(f"{area} {rest}{suffix:03d}", number)
    return _spell_phone(f"07700 900{mobile:03d}", number)


def _session_token(uid: int, ip: str, ua: str, login_at: int) -> tuple[str, str]:
    """WordPress's session_tokens user meta for one login (PHP-serialised)."""
    digest = hashlib.sha256(f"{uid}/{login_at}".encode()).hexdigest()
    return ("session_tokens",
            f'a:1:{{s:64:"{digest}";a:4:{{s:10:"expiration";i:{login_at + 14 * 86400};s:2:"ip";'
            f's:{len(ip)}:"{ip}";s:2:"ua";s:{len(ua)}:"{ua}";s:5:"login";i:{login_at};}}}}')


_PLAN = [(ADMIN, "admin"), (FOUR_SPELLINGS, "customer"), (SECOND_EMAIL, "customer"),
         (HOUSEHOLD[0], "customer"), (HOUSEHOLD[1], "customer"), (GUEST, "guest"),
         *((f"guest-{n}", "guest") for n in range(2, 6)),
         *((f"customer-{n:02d}", "customer") for n in range(1, 21))]  # (person's key, role)
_ADDRESS_META = ("first_name", "last_name", "address_1", "city", "postcode", "country")  # an account's billing_*


class _WorldBuilder:
    """The steps of `_world`. Each draws from the same seeded Faker and Random, so the steps, and the
    draws within each, must keep their order for the data to stay the same."""

    admin_id: int

    def __init__(self) -> None:
        self.fake = Faker("en_GB")
        self.fake.seed_instance(SEED + 11)
        self.rng = random.Random(f"{SEED}/woo")
        self.start, self.end = EPOCH - timedelta(days=8 * 365), EPOCH - timedelta(days=2)
        self.spec: dict[str, _Spec] = {}
        self.registered: dict[str, datetime] = {}
        self.user_ids: dict[str, int] = {}
        self.posts: list[_Row] = []
        self.next_post = 1
        self.product_ids: list[int] = []
        self.orders: list[_Order] = []
        self.users: list[_Row] = []
        self.usermeta: list[tuple[int, str, str, str]] = []
        self.events: list[_Event] = []

    def token(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def moment(self, low: datetime, high: datetime) -> datetime:
        span = max(int((high - low).total_seconds()), 1)
        return (low + timedelta(seconds=self.rng.randrange(span))).replace(microsecond=0)

    # -- who ----------------------------------------------------------------------------------
    def decide_people(self) -> None:
        mobiles = self.rng.sample(range(1000), len(_PLAN))
        for number, (key, role) in enumerate(_PLAN):
            self.spec[key] = self._spec_of(number, key, role, mobiles[number])
        for key in HOUSEHOLD:
            self.spec[key].ips = [HOME_IP, self.spec[key].ips[0]]
        self.spec["customer-07"].ips = ["2001:db8:4f2a:17::52", "198.51.100.90"]  # an IPv6 home connection
        self.spec[ADMIN].ips = [ADMIN_IP]
        self.spec[ADMIN].ua = _UAS[2]
        second = self.spec[SECOND_EMAIL]
        second.email2 = f"{second.first[0]}{second.last}@{self.fake.free_email_domain()}".lower().replace("'", "")

    def _spec_of(self, number: int, key: str, role: str, mobile: int) -> _Spec:
        fake = self.fake
        first = fake.first_name()
        last = fake.last_name()
        if key == HOUSEHOLD[1]:  # the household shares a surname and an address
            last = self.spec[HOUSEHOLD[0]].last
        local = _email_local(first, last)  # as capitalised as the name
        domain = SHOP_DOMAIN if role == "admin" else fake.free_email_domain()
        address = {"address_1": fake.street_address(), "city": fake.city(), "postcode": fake.postcode()}
        if key == HOUSEHOLD[1]:
            address = self.spec[HOUSEHOLD[0]].address
        return _Spec(
            role=role, first=first, last=last, phone=_phone_of(number, key, mobile), address=address,
            email=f"{local}{number}@{domain}".lower() if role != "admin" else f"{local}@{domain}".lower(),
            mixed=f"{local}{number}@{domain}",  # Alice.Petrov7@...
            ips=[f"198.51.100.{10 + number}", f"203.0.113.{100 + number}"],
            ua=_UAS[number % len(_UAS)])

    # -- accounts (registered in time order; IDs follow, with the gaps deleted spam users leave) --
    def register_accounts(self) -> None:
        registered = {ADMIN: _INSTALLED}
        for key, role in _PLAN:
            if role == "customer":
                registered[key] = self.moment(self.start + timedelta(days=60), EPOCH - timedelta(days=200))
        registered[FOUR_SPELLINGS] = EPOCH - timedelta(days=6 * 365 + 40)
        registered["customer-01"] = self.start - timedelta(days=200)  # an account from WooCommerce 3.x days
        registered[SECOND_EMAIL] = EPOCH - timedelta(days=3 * 365)
        next_user = 1
        for key in sorted(registered, key=lambda k: (registered[k], k)):
            self.user_ids[key] = next_user
            next_user += 1 + (self.rng.random() < 0.2)
        self.registered = registered
        self.admin_id = self.user_ids[ADMIN]

    def people(self) -> list[WooPerson]:
        people = []
        for key, role in _PLAN:
            s = self.spec[key]
            emails = [s.email] + ([s.email2] if key == SECOND_EMAIL else [])
            people.append(WooPerson(key, role, f"{s.first} {s.last}", s.email, tuple(emails),
                                    normalised_phone(s.phone) if role != "admin" else None, self.user_ids.get(key)))
        return people

    # -- products and WordPress's own pages ---------------------------------------------------
    def _new_post(self, when: datetime, **values: Any) -> _Row:
        row = {"ID": self.next_post, "post_author": self.admin_id, "post_date": _local(when),
               "post_date_gmt": _gmt(when), "post_modified": _local(when), "post_modified_gmt": _gmt(when), **values}
        self.next_post += 1
        self.posts.append(row)
        return row

    def add_pages_and_products(self) -> None:
        self._new_post(_INSTALLED, post_title="Hello world!", post_name="hello-world", post_type="post",
                       comment_count=1, post_content="<!-- wp:paragraph --><p>Welcome to WordPress. This is your "
                       "first post.</p><!-- /wp:paragraph -->", guid=f"{SHOP_URL}/?p=1")
        self._new_post(_INSTALLED, post_title="Sample Page", post_name="sample-page", post_type="page",
                       guid=f"{SHOP_URL}/?page_id=2")
        self._new_post(_INSTALLED, post_title="Privacy Policy", post_name="privacy-policy", post_type="page",
                       post_status="draft", guid=f"{SHOP_URL}/?page_id=3")
        for title in ("Shop", "Cart", "Checkout", "My account", "Refund and Returns Policy"):
            slug = title.lower().replace(" ", "-")
            self._new_post(_INSTALLED + timedelta(minutes=4), post_title=title, post_name=slug, post_type="page",
                           comment_status="closed", guid=f"{SHOP_URL}/?page_id={self.next_post}")
        self.next_post += 3  # autosaves and revisions since deleted
        for index, (name, _sku, _price) in enumerate(_PRODUCTS):
            row = self._new_post(_INSTALLED + timedelta(days=2, hours=index), post_title=name, post_type="product",
                                 post_name=name.lower().replace(" ", "-"), post_excerpt=f"{name}, designed in Devon.",
                                 post_content=f"<p>Our {name.lower()}: {self.fake.sentence(nb_words=10)}</p>",
                                 guid=f"{SHOP_URL}/?post_type=product&#038;p={self.next_post}")
            self.product_ids.append(row["ID"])
            self.next_post += self.rng.randint(1, 3)  # each product's image attachments (not modelled)

    # -- orders ---------------------------------------------------------------------------------
    def _billing_of(self, key: str) -> dict[str, str]:
        s = self.spec[key]
        return {"first_name": s.first, "last_name": s.last, "company": "", "address_1": s.address["address_1"],
                "address_2": "", "city": s.address["city"], "state": "", "postcode": s.address["postcode"],
                "country": "GB", "phone": s.phone}

    def _order(self, key: str, created: datetime, customer_id: int, email: str, address_email: str | None = None,
               ip: str | None = None) -> _Order:
        rng = self.rng
        s = self.spec[key]
        lines = [(rng.randrange(len(_PRODUCTS)), rng.choice((1, 1, 1, 2))) for _ in range(rng.choice((1, 1, 2, 3)))]
        big = any(Decimal(_PRODUCTS[p][2]) >= 200 for p, _ in lines)
        payment = _PAYMENTS[rng.choice((0, 0, 0, 1, 1, 2))]
        billing = self._billing_of(key)
        shipping = {**billing, "phone": ""}
        status = "completed" if created < EPOCH - timedelta(days=4) else "processing"
        if rng.random() < 0.04 and payment[0] == "bacs":
            status = "cancelled"
        made = _Order(key, customer_id, created, email, address_email if address_email is not None else email.strip(),
                      billing, shipping, ip or rng.choice(s.ips), s.ua, lines,
                      _SHIPPING[1] if big else _SHIPPING[0 if rng.random() < 0.7 else 2], payment, status,
                      rng.choice(_CUSTOMER_NOTES) if rng.random() < 0.2 else "")
        self.orders.append(made)
        return made

    def place_orders(self) -> None:
        for key, role in _PLAN:
            if key == FOUR_SPELLINGS:
                self._four_spellings_orders(key)
            elif key == SECOND_EMAIL:
                self._second_email_orders(key)
            elif key in HOUSEHOLD:
                for _ in range(2 if key == HOUSEHOLD[0] else 3):
                    self._order(key, self.moment(self.registered[key] + timedelta(days=1), self.end),
                                self.user_ids[key], self.spec[key].email, ip=HOME_IP)
            elif key == GUEST:
                s = self.spec[key]
                self._order(key, self.moment(EPOCH - timedelta(days=900), EPOCH - timedelta(days=800)), 0, s.mixed)
                self._order(key, self.moment(EPOCH - timedelta(days=300), EPOCH - timedelta(days=200)), 0, s.email)
            elif role == "guest":
                for _ in range(self.rng.randint(1, 2)):
                    self._order(key, self.moment(self.start, self.end), 0, self.spec[key].email)
            elif role == "customer":
                self._customer_orders(key)

    def _four_spellings_orders(self, key: str) -> None:
        s = self.spec[key]
        upper = s.email.upper()
        for days_back in (6 * 365, 3 * 365 + 20, 400, 30):
            self._order(key, self.moment(EPOCH - timedelta(days=days_back + 15), EPOCH - timedelta(days=days_back)),
                        self.user_ids[key], upper, address_email=s.email)
        self.orders[-3].email = f"  {s.email} "  # typed with spaces, kept as typed

    def _second_email_orders(self, key: str) -> None:
        email2 = self.spec[key].email2
        before = self.registered[key]
        for days in (400, 150):  # as a guest, with the second address, before registering
            self._order(key, self.moment(before - timedelta(days=days + 20), before - timedelta(days=days)), 0, email2)
        for _ in range(2):
            self._order(key, self.moment(before + timedelta(days=10), self.end), self.user_ids[key], email2)

    def _customer_orders(self, key: str) -> None:
        email = self.spec[key].email
        count = self.rng.randint(1, 5)
        low = self.registered[key] + timedelta(days=1)
        if key == "customer-01":  # an order of a financial year whose 7 years have run out
            self._order(key, datetime(2018, 10, 12, 14, 5, tzinfo=UTC), self.user_ids[key], email)
            count -= 1
        for _ in range(count):
            self._order(key, self.moment(max(low, self.start), self.end), self.user_ids[key], email)

    def refund_some(self) -> None:
        """Refunds: an order of the designated people, then about one in nine of the rest."""
        orders, rng = self.orders, self.rng
        designated_refunds = {id(next(o for o in orders if o.person == FOUR_SPELLINGS and o.email.startswith(" "))),
                              id(next(o for o in orders if o.person == SECOND_EMAIL)),
                              id(next(o for o in orders if o.person == GUEST))}
        for made in orders:
            if made.status != "completed" or not (id(made) in designated_refunds or rng.random() < 0.11):
                continue
            full = rng.random() < 0.35
            gross = sum(Decimal(_PRODUCTS[p][2]) * q for p, q in made.lines)
            first_item = Decimal(_PRODUCTS[made.lines[0][0]][2])
            amount = gross + Decimal(made.shipping_method[3]) if full else _money(first_item / 2)
            when = min(made.created + timedelta(days=rng.randint(3, 25), hours=rng.randint(0, 8)),
                       EPOCH - timedelta(hours=5))
            made.refund = _Refund(_money(amount), rng.choice(_REFUND_REASONS), when, full)
            if full:
                made.status = "refunded"

    def number_orders(self) -> None:
        """Post IDs in creation order: orders and refunds share the sequence with everything else."""
        orders = self.orders
        creations = sorted([(o.created, 0, n) for n, o in enumerate(orders)]
                           + [(o.refund.created, 1, n) for n, o in enumerate(orders) if o.refund],
                           key=lambda c: (c[0], c[1], c[2]))
        next_id = self.next_post + 40
        for _when, is_refund, n in creations:
            made = orders[n]
            if is_refund:
                assert made.refund is not None  # only refunded orders have a refund's creation
                made.refund.id = next_id
            else:
                made.id = next_id
                made.key = "wc_order_" + self.token(13)
                made.cart_hash = hashlib.md5(f"cart/{next_id}".encode()).hexdigest()
                made.transaction_id = {"stripe": "ch_3" + self.token(24), "paypal": self.token(
                    17, string.ascii_uppercase + string.digits)}.get(made.payment[0], "")
            next_id += 1 + self.rng.choice((0, 0, 0, 1, 2))
        orders.sort(key=lambda o: o.id)

    # -- accounts' rows -------------------------------------------------------------------------
    def account_rows(self) -> None:
        last_order = {}
        for made in self.orders:
            last_order[made.person] = made
        logins: set[str] = set()
        for key in sorted(self.user_ids, key=lambda k: self.user_ids[k]):
            s = self.spec[key]
            uid = self.user_ids[key]
            # WooCommerce makes a username of first.last, with a number when it is taken.
            login = "oakhome" if key == ADMIN else _email_local(s.first, s.last).lower()
            login = login if login not in logins else f"{login}{uid}"
            logins.add(login)
            self.users.append(self._user_row(key, uid, login))
            meta = self._usermeta_of(key, uid, login, last_order.get(key))
            self.usermeta += [(uid, k, v, key) for k, v in meta]
            if key not in (ADMIN, FOUR_SPELLINGS, SECOND_EMAIL):
                billing_email = self._account_billing_email(key, uid)
                for made in self.orders:  # checkout fills the billing email in from the account's, trimmed
                    if made.person == key and made.customer_id:
                        made.email = made.address_email = billing_email.strip()

    def _user_row(self, key: str, uid: int, login: str) -> _Row:
        s = self.spec[key]
        user_email = s.mixed if (key == FOUR_SPELLINGS or uid % 3 == 0) else s.email
        phpass = "$P$B" + self.token(30, string.ascii_letters + string.digits + "./")  # WordPress's portable hash
        return {"ID": uid, "user_login": login, "user_pass": phpass, "user_nicename": login.replace(".", "-"),
                "user_email": user_email, "user_url": "", "user_registered": _gmt(self.registered[key]),
                "user_activation_key": "", "user_status": 0, "display_name": f"{s.first} {s.last}"}

    def _usermeta_of(self, key: str, uid: int, login: str, latest: _Order | None) -> list[tuple[str, str]]:
        s = self.spec[key]
        meta = [("nickname", login), ("first_name", s.first), ("last_name", s.last), ("description", ""),
                ("rich_editing", "true"), ("syntax_highlighting", "true"), ("comment_shortcuts", "false"),
                ("admin_color", "fresh"), ("use_ssl", "0"), ("show_admin_bar_front", "true"), ("locale", "")]
        if key == ADMIN:
            meta += [("wp_capabilities", 'a:1:{s:13:"administrator";b:1;}'), ("wp_user_level", "10"),
                     ("dismissed_wp_pointers", "theme_editor_notice,wc-admin-home"),
                     ("wp_dashboard_quick_press_last_post_id", "4"),
                     ("community-events-location", 'a:1:{s:2:"ip";s:9:"192.0.2.0";}'),
                     _session_token(uid, ADMIN_IP, s.ua, int((EPOCH - timedelta(days=1)).timestamp()))]
            return meta
        meta += [("wp_capabilities", 'a:1:{s:8:"customer";b:1;}'), ("wp_user_level", "0"),
                 ("dismissed_wp_pointers", "")]
        if latest is not None and latest.created > EPOCH - timedelta(days=30):
            meta.append(_session_token(uid, latest.ip, s.ua, int(latest.created.timestamp())))
        billing = self._billing_of(key)
        meta.append(("last_update", str(int(self.registered[key].timestamp()) + 3600)))
        meta += [(f"billing_{f}", billing[f]) for f in _ADDRESS_META]
        meta += [("billing_email", self._account_billing_email(key, uid)), ("billing_phone", billing["phone"])]
        meta += [(f"shipping_{f}", billing[f]) for f in _ADDRESS_META]
        if uid % 4 == 1:
            meta.append(("shipping_phone", billing["phone"]))
        if latest is not None:
            meta += [("wc_last_active", str(int(latest.created.replace(hour=0, minute=0, second=0).timestamp()))),
                     ("paying_customer", "1")]
        if uid % 5 == 2:
            meta.append(("_woocommerce_persistent_cart_1", 'a:1:{s:4:"cart";a:0:{}}'))
        return meta

    def _account_billing_email(self, key: str, uid: int) -> str:
        """A customer account's billing email, as last typed at checkout."""
        s = self.spec[key]
        if key == SECOND_EMAIL:
            return s.email2
        if key == FOUR_SPELLINGS or uid % 7 == 3:
            return s.email.upper()
        if uid % 7 == 5:
            return f" {s.email}  "
        return s.email

    # -- analytics lookup: a row per account, and per guest email (one for two spellings) -------
    def lookup_rows(self) -> list[tuple[_Row, str]]:
        lookups: list[tuple[_Row, str, datetime, list[_Order]]] = []
        for key, role in _PLAN:
            s = self.spec[key]
            mine = [o for o in self.orders if o.person == key]
            if role == "customer":
                username = next(u["user_login"] for u in self.users if u["ID"] == self.user_ids[key])
                lookups.append(({"user_id": self.user_ids[key], "username": username, "email": s.email,
                                 "date_registered": _gmt(self.registered[key])}, key, self.registered[key],
                                [o for o in mine if o.customer_id]))
            guest_orders = [o for o in mine if not o.customer_id]
            if guest_orders:
                lookups.append(({"user_id": None, "username": "", "email": guest_orders[0].email.strip(),
                                 "date_registered": None}, key, guest_orders[0].created, guest_orders))
        lookups.sort(key=lambda item: (item[2], item[1]))
        lookup_rows = []
        for number, (row, key, _created, mine) in enumerate(lookups, start=1):
            s = self.spec[key]
            lookup_rows.append(({"customer_id": number, "first_name": s.first, "last_name": s.last,
                                 "date_last_active": _gmt(max(o.created for o in mine)).replace(hour=0, minute=0,
                                                                                                second=0)
                                 if mine else None,
                                 "country": "GB", "postcode": s.address["postcode"], "city": s.address["city"],
                                 "state": "", **row}, key))
        return lookup_rows

    # -- comments: WordPress's sample, order notes, reviews and the admin's replies -------------
    def comment_rows(self) -> list[tuple[_Row, str | None]]:
        for made in self.orders:
            self._note_order(made)
        self._reply_to(self._review_orders())
        comment_rows: list[tuple[_Row, str | None]] = [(
            {"comment_ID": 1, "comment_post_ID": 1, "comment_author": "A WordPress Commenter",
             "comment_author_email": "wapuu@wordpress.example", "comment_author_url": "https://wordpress.org/",
             "comment_author_IP": "", "comment_date": _local(_INSTALLED), "comment_date_gmt": _gmt(_INSTALLED),
             "comment_content": "Hi, this is a comment.", "comment_agent": "", "comment_type": "comment",
             "comment_parent": 0, "user_id": 0}, None)]
        ids_of_events = {}
        for when, index, row, owner, parent in sorted(self.events, key=lambda e: (e[0], e[1])):
            comment_id = len(comment_rows) + 1
            ids_of_events[index] = comment_id
            comment_rows.append(({**row, "comment_ID": comment_id, "comment_date": _local(when),
                                  "comment_date_gmt": _gmt(when),
                                  "comment_parent": ids_of_events[parent] if parent is not None else 0}, owner))
        return comment_rows

    def _note(self, made: _Order, when: datetime, text: str) -> None:
        self.events.append((when, len(self.events), {
            "comment_post_ID": made.id, "comment_author": "WooCommerce", "comment_author_email": SYSTEM_EMAIL,
            "comment_author_url": "", "comment_author_IP": "", "comment_content": text, "comment_agent": "WooCommerce",
            "comment_type": "order_note", "comment_parent": 0, "user_id": 0, "comment_date": when}, made.person, None))

    def _note_order(self, made: _Order) -> None:
        paid = made.created + timedelta(minutes=1)
        if made.status == "cancelled":
            self._note(made, made.created + timedelta(hours=1), "Unpaid order cancelled - time limit reached. "
                                                                "Order status changed from Pending payment to "
                                                                "Cancelled.")
            return
        if made.payment[0] == "bacs":
            self._note(made, paid, "Awaiting BACS payment Order status changed from Pending payment to On hold.")
            paid = made.created + timedelta(days=1, hours=2)
            self._note(made, paid, "Order status changed from On hold to Processing.")
        else:
            if made.payment[0] == "stripe":
                self._note(made, paid, f"Stripe charge complete (Charge ID: {made.transaction_id})")
            else:
                self._note(made, paid, "IPN payment completed")
            self._note(made, paid + timedelta(seconds=1), "Order status changed from Pending payment to Processing.")
        if made.status in ("completed", "refunded"):
            self._note(made, paid + timedelta(days=1, hours=3), "Order status changed from Processing to Completed.")
        if made.refund:
            self._note(made, made.refund.created, f"Refunded &pound;{made.refund.amount} &ndash; {made.refund.reason}")
            if made.refund.full:
                self._note(made, made.refund.created + timedelta(seconds=2),
                           "Order status changed from Completed to Refunded.")

    def _review(self, key: str, made: _Order, when: datetime, user_id: int, author: str, email: str) -> int:
        product = made.lines[0][0]
        self.events.append((when, len(self.events), {
            "comment_post_ID": self.product_ids[product], "comment_author": author, "comment_author_email": email,
            "comment_author_url": "", "comment_author_IP": made.ip, "comment_content": self.rng.choice(_REVIEWS),
            "comment_agent": self.spec[key].ua, "comment_type": "review", "comment_parent": 0, "user_id": user_id,
            "comment_date": when}, key, None))
        return len(self.events) - 1

    def _review_orders(self) -> list[tuple[str, int, datetime]]:
        """Reviews of products ordered, as (person, event number, when)."""
        rng = self.rng
        reviewed = []
        for key, role in _PLAN:
            mine = [o for o in self.orders if o.person == key and o.status in ("completed", "refunded")]
            if role == "admin" or not mine or not (key in (FOUR_SPELLINGS, GUEST, *HOUSEHOLD) or rng.random() < 0.45):
                continue
            for made in rng.sample(mine, min(len(mine), 1 if rng.random() < 0.7 else 2)):
                when = min(made.created + timedelta(days=rng.randint(6, 30)), EPOCH - timedelta(days=1))
                if role == "guest":
                    index = self._review(key, made, when, 0, self.spec[key].first, self.spec[key].email)
                else:
                    user = next(u for u in self.users if u["ID"] == self.user_ids[key])
                    index = self._review(key, made, when, user["ID"], user["display_name"], user["user_email"])
                reviewed.append((key, index, when))
        return reviewed

    def _reply_to(self, reviewed: list[tuple[str, int, datetime]]) -> None:
        """The admin's replies to some of the reviews."""
        admin_id = self.admin_id
        for key, index, when in reviewed:
            if key in (FOUR_SPELLINGS, GUEST, HOUSEHOLD[0]) or self.rng.random() < 0.35:
                reply_at = min(when + timedelta(days=self.rng.randint(1, 5)), EPOCH - timedelta(hours=2))
                admin = next(u for u in self.users if u["ID"] == admin_id)
                self.events.append((reply_at, len(self.events), {
                    "comment_post_ID": self.events[index][2]["comment_post_ID"],
                    "comment_author": admin["display_name"], "comment_author_email": admin["user_email"],
                    "comment_author_url": "", "comment_author_IP": ADMIN_IP,
                    "comment_content": f"Thank you for your review, {self.spec[key].first}! "
                    "We're so glad it has found a home with you.", "comment_agent": self.spec[ADMIN].ua,
                    "comment_type": "review", "comment_parent": 0, "user_id": admin_id, "comment_date": reply_at},
                    ADMIN, index))

    def count_reviews(self, comment_rows: list[tuple[_Row, str | None]]) -> None:
        """Each product's comment_count: its reviews, not the replies to them."""
        review_counts: dict[int, int] = defaultdict(int)
        for row, _owner in comment_rows:
            if row["comment_type"] == "review" and not row["comment_parent"]:
                review_counts[row["comment_post_ID"]] += 1
        for row in self.posts:
            if row["post_type"] == "product":
                row["comment_count"] = review_counts[row["ID"]]


@cache
def _world() -> _World:
    """Everything both layouts share, decided once: people, accounts, orders, comments, products."""
    build = _WorldBuilder()
    build.decide_people()
    build.register_accounts()
    people = build.people()
    build.add_pages_and_products()
    build.place_orders()
    build.refund_some()
    build.number_orders()
    build.account_rows()
    lookups = build.lookup_rows()
    comments = build.comment_rows()
    build.count_reviews(comments)
    return _World(people, build.users, build.usermeta, lookups, build.orders, comments, build.posts,
                  build.product_ids, build.admin_id)


@cache
def _people_by_key() -> dict[str, WooPerson]:
    return {person.key: person for person in _world().people}


def woo_people() -> tuple[WooPerson, ...]:
    """The shop's people: its admin, 20 registered customers and 5 guests (the same in both layouts)."""
    return tuple(_world().people)


def woo_person(key: str) -> WooPerson:
    """One person by key: woo_person(FOUR_SPELLINGS).email is the address to ask about."""
    return _people_by_key()[key]


# ---------------------------------------------------------------------------------------------
# The rows of one layout
# ---------------------------------------------------------------------------------------------

@dataclass
class WooData:
    layout: str
    rows: dict[str, list[dict]]  # table -> rows, every column given
    owner: dict[tuple[str, object], str | None] = field(default_factory=dict)  # (table, pk) -> WooPerson.key
    people: tuple[WooPerson, ...] = ()


def woo_data(layout: str) -> WooData:
    """The layout's rows, generated the same on every call (fresh dicts each time)."""
    tables = woo_tables(layout)
    world = _world()
    data = WooData(layout, {name: [] for name in tables}, {}, tuple(world.people))
    counters: dict[str, int] = defaultdict(int)
    defaults = {name: {c.name: (c.default.arg if isinstance(c.default, ColumnDefault) and not callable(c.default.arg)
                                else None) for c in table.columns} for name, table in tables.items()}

    def add(table: str, owner: str | None, **values: Any) -> _Row:
        if unknown := values.keys() - defaults[table].keys():
            raise KeyError(f"{table} has no column {sorted(unknown)[0]}")
        pk = PRIMARY_KEYS[table]
        if pk not in values:
            counters[table] += 1
            values[pk] = counters[table]
        row = {**defaults[table], **values}
        data.rows[table].append(row)
        data.owner[(table, row[pk])] = owner
        return row

    for user in world.users:
        add("wp_users", next(p.key for p in world.people if p.user_id == user["ID"]), **user)
    for user_id, key, value, owner in world.usermeta:
        add("wp_usermeta", owner, user_id=user_id, meta_key=key, meta_value=value)
    for row, owner in world.lookups:
        add("wp_wc_customer_lookup", owner, **row)
    for row, commenter in world.comments:
        add("wp_comments", commenter, **row)
    for row in world.posts:
        add("wp_posts", None, **row)
    for index, product_id in enumerate(world.product_ids):
        name, sku, price = _PRODUCTS[index]
        sold = sum(q for o in world.orders for p, q in o.lines if p == index)
        for key, value in (("_sku", sku), ("_regular_price", price), ("_price", price), ("_tax_status", "taxable"),
                           ("_manage_stock", "no"), ("_stock_status", "instock"), ("total_sales", str(sold)),
                           ("_wc_review_count", str(next(r["comment_count"] for r in world.posts
                                                         if r["ID"] == product_id)))):
            add("wp_postmeta", None, post_id=product_id, meta_key=key, meta_value=value)

    for made in world.orders:
        _add_order(add, layout, made, world.admin_id)
    return data


def _vat(gross: Decimal) -> Decimal:
    return _money(gross / 6)  # 20% VAT included in the price


class _Add(Protocol):
    """woo_data's row writer: adds a row to a table, owned by a person's key (or no one's)."""

    def __call__(self, table: str, owner: str | None, **values: Any) -> _Row: ...


@dataclass(frozen=True)
class _Figures:
    """An order's sums and dates, which its rows in every table repeat."""
    items: list[tuple[int, int, Decimal]]  # (product index, quantity, gross)
    ship_name: str
    method_id: str
    instance: str
    ship_gross: Decimal
    cart_tax: Decimal
    ship_tax: Decimal
    total: Decimal
    updated: datetime
    paid: datetime | None
    completed: datetime | None
    version: str  # WooCommerce's version when the order was placed


def _figures(made: _Order) -> _Figures:
    items = [(i, q, Decimal(_PRODUCTS[i][2]) * q) for i, q in made.lines]
    goods = sum((gross for _, _, gross in items), Decimal(0))
    ship_name, method_id, instance, ship_price = made.shipping_method
    ship_gross = Decimal(ship_price)
    return _Figures(
        items, ship_name, method_id, instance, ship_gross,
        cart_tax=sum((_vat(g) for _, _, g in items), Decimal(0)), ship_tax=_vat(ship_gross), total=goods + ship_gross,
        updated=made.refund.created if made.refund else made.created + timedelta(days=1),
        paid=None if made.status == "cancelled" else made.created + timedelta(minutes=1),
        completed=made.created + timedelta(days=1, hours=3) if made.status in ("completed", "refunded") else None,
        version=_WC_VERSIONS[made.created.year])


def _order_meta(made: _Order, total: Decimal, paid: datetime | None) -> dict[str, str]:
    """The order's meta (wp_wc_orders_meta, or wp_postmeta with the legacy keys): attribution and payment."""
    meta = {"is_vat_exempt": "no"}
    if made.created >= _ATTRIBUTION_SINCE:
        organic = made.id % 3 == 0
        slug = _PRODUCTS[made.lines[0][0]][0].lower().replace(" ", "-")
        session_start = _gmt(made.created - timedelta(minutes=14))
        meta.update({"_wc_order_attribution_source_type": "organic" if organic else "typein",
                     "_wc_order_attribution_utm_source": "google" if organic else "(direct)",
                     "_wc_order_attribution_session_entry": f"{SHOP_URL}/product/{slug}/",
                     "_wc_order_attribution_session_start_time": f"{session_start:%Y-%m-%d %H:%M:%S}",
                     "_wc_order_attribution_session_pages": str(3 + made.id % 7),
                     "_wc_order_attribution_session_count": str(1 + made.id % 3),
                     "_wc_order_attribution_user_agent": made.ua,
                     "_wc_order_attribution_device_type": "Mobile" if "Mobile" in made.ua else "Desktop"})
    if made.payment[0] == "paypal" and paid:
        meta.update({"Payer PayPal address": made.email.strip().lower(), "Payer first name": made.billing["first_name"],
                     "Payer last name": made.billing["last_name"], "Payment type": "instant"})
    elif made.payment[0] == "stripe" and paid:
        meta.update({"_stripe_customer_id": "cus_" + hashlib.sha1(made.person.encode()).hexdigest()[:14],
                     "_stripe_charge_captured": "yes", "_stripe_currency": "GBP",
                     "_stripe_fee": str(_money(total * Decimal("0.015") + Decimal("0.20")))})
    return meta


def _refund_meta(refund: _Refund, payment: str, admin_id: int) -> dict[str, str]:
    return {"_refund_amount": str(refund.amount), "_refunded_by": str(admin_id),
            "_refunded_payment": "1" if payment != "bacs" else "", "_refund_reason": refund.reason}


def _add_order(add: _Add, layout: str, made: _Order, admin_id: int) -> None:
    """One order (and its refund) in the layout's tables, with its items."""
    figures = _figures(made)
    meta = _order_meta(made, figures.total, figures.paid)
    refund_meta = _refund_meta(made.refund, made.payment[0], admin_id) if made.refund else {}
    if layout == HPOS:
        _add_hpos_order(add, made, figures, meta)
        if made.refund:
            _add_hpos_refund(add, made, made.refund, figures.version, refund_meta)
    else:
        _add_legacy_order(add, made, figures, meta)
        if made.refund:
            _add_legacy_refund(add, made, made.refund, figures.version, refund_meta)
    _add_order_items(add, made, figures)


def _add_hpos_order(add: _Add, made: _Order, figures: _Figures, meta: dict[str, str]) -> None:
    owner, created, updated = made.person, made.created, figures.updated
    paid, completed = figures.paid, figures.completed
    add("wp_posts", None, ID=made.id, post_author=1, post_date=_local(created), post_date_gmt=_gmt(created),
        post_status="draft", post_type="shop_order_placehold", comment_status="closed", ping_status="closed",
        post_modified=_local(created), post_modified_gmt=_gmt(created))
    add("wp_wc_orders", owner, id=made.id, status=f"wc-{made.status}", currency="GBP", type="shop_order",
        tax_amount=figures.cart_tax, total_amount=figures.total, customer_id=made.customer_id,
        billing_email=made.email, date_created_gmt=_gmt(created), date_updated_gmt=_gmt(updated), parent_order_id=0,
        payment_method=made.payment[0], payment_method_title=made.payment[1],
        transaction_id=made.transaction_id or None, ip_address=made.ip, user_agent=made.ua,
        customer_note=made.customer_note or None)
    for kind, address in (("billing", made.billing), ("shipping", made.shipping)):
        add("wp_wc_order_addresses", owner, order_id=made.id, address_type=kind,
            **{f: address[f] for f in _ADDRESS_FIELDS},
            email=made.address_email if kind == "billing" else None, phone=address["phone"] or None)
    add("wp_wc_order_operational_data", owner, order_id=made.id, created_via="checkout",
        woocommerce_version=figures.version, prices_include_tax=1, coupon_usages_are_counted=1,
        download_permission_granted=1, cart_hash=made.cart_hash,
        new_order_email_sent=1, order_key=made.key, order_stock_reduced=1 if paid else 0,
        date_paid_gmt=_gmt(paid) if paid else None, date_completed_gmt=_gmt(completed) if completed else None,
        shipping_tax_amount=figures.ship_tax, shipping_total_amount=figures.ship_gross - figures.ship_tax,
        discount_tax_amount=Decimal(0), discount_total_amount=Decimal(0), recorded_sales=1 if paid else 0)
    for key, value in meta.items():
        add("wp_wc_orders_meta", owner, order_id=made.id, meta_key=key, meta_value=value)


def _add_hpos_refund(add: _Add, made: _Order, r: _Refund, version: str, refund_meta: dict[str, str]) -> None:
    owner = made.person
    add("wp_posts", None, ID=r.id, post_author=1, post_date=_local(r.created), post_date_gmt=_gmt(r.created),
        post_status="draft", post_type="shop_order_placehold", post_parent=made.id, comment_status="closed",
        ping_status="closed", post_modified=_local(r.created), post_modified_gmt=_gmt(r.created))
    add("wp_wc_orders", owner, id=r.id, status="wc-completed", currency="GBP", type="shop_order_refund",
        tax_amount=-_vat(r.amount), total_amount=-r.amount, customer_id=0, billing_email=None,
        date_created_gmt=_gmt(r.created), date_updated_gmt=_gmt(r.created), parent_order_id=made.id)
    add("wp_wc_order_operational_data", owner, order_id=r.id, woocommerce_version=version, prices_include_tax=1,
        shipping_tax_amount=Decimal(0), shipping_total_amount=Decimal(0), discount_tax_amount=Decimal(0),
        discount_total_amount=Decimal(0))
    for key, value in refund_meta.items():
        if value != "":
            add("wp_wc_orders_meta", owner, order_id=r.id, meta_key=key, meta_value=value)


def _add_legacy_order(add: _Add, made: _Order, figures: _Figures, meta: dict[str, str]) -> None:
    owner, created, updated = made.person, made.created, figures.updated
    paid, completed = figures.paid, figures.completed
    ship_gross, ship_tax = figures.ship_gross, figures.ship_tax
    title = f"{_local(created):%b %d, %Y @ %I:%M %p}"
    add("wp_posts", owner, ID=made.id, post_author=1, post_date=_local(created), post_date_gmt=_gmt(created),
        post_title=f"Order &ndash; {title}", post_excerpt=made.customer_note, post_status=f"wc-{made.status}",
        comment_status="closed", ping_status="closed", post_password=made.key,
        post_name=f"order-{_local(created):%b-%d-%Y-%I%M-%p}".lower(), post_modified=_local(updated),
        post_modified_gmt=_gmt(updated), guid=f"{SHOP_URL}/?post_type=shop_order&#038;p={made.id}",
        post_type="shop_order")
    b, s = made.billing, made.shipping
    postmeta = {"_order_key": made.key, "_customer_user": str(made.customer_id),
                "_payment_method": made.payment[0], "_payment_method_title": made.payment[1],
                "_transaction_id": made.transaction_id, "_customer_ip_address": made.ip,
                "_customer_user_agent": made.ua, "_created_via": "checkout", "_cart_hash": made.cart_hash,
                "_date_paid": str(int(paid.timestamp())) if paid else "",
                "_paid_date": f"{_local(paid):%Y-%m-%d %H:%M:%S}" if paid else "",
                "_date_completed": str(int(completed.timestamp())) if completed else "",
                "_completed_date": f"{_local(completed):%Y-%m-%d %H:%M:%S}" if completed else "",
                **{f"_billing_{f}": b[f] for f in _ADDRESS_FIELDS}, "_billing_email": made.email,
                "_billing_phone": b["phone"], **{f"_shipping_{f}": s[f] for f in _ADDRESS_FIELDS},
                "_order_currency": "GBP", "_cart_discount": "0", "_cart_discount_tax": "0",
                "_order_shipping": str(ship_gross - ship_tax), "_order_shipping_tax": str(ship_tax),
                "_order_tax": str(figures.cart_tax), "_order_total": str(_money(figures.total)),
                "_order_version": figures.version, "_prices_include_tax": "yes",
                # WooCommerce's search strings: every address field joined by spaces, email and phone too.
                "_billing_address_index": " ".join([*(b[f] for f in _ADDRESS_FIELDS), made.email, b["phone"]]),
                "_shipping_address_index": " ".join([*(s[f] for f in _ADDRESS_FIELDS), s["phone"]]),
                "_recorded_sales": "yes" if paid else "no", "_recorded_coupon_usage_counts": "yes",
                "_order_stock_reduced": "yes" if paid else "no", "_new_order_email_sent": "true",
                "_download_permissions_granted": "yes", **meta}
    for key, value in postmeta.items():
        if value != "":  # WooCommerce deletes a meta key rather than store an empty value
            add("wp_postmeta", owner, post_id=made.id, meta_key=key, meta_value=value)


def _add_legacy_refund(add: _Add, made: _Order, r: _Refund, version: str, refund_meta: dict[str, str]) -> None:
    owner = made.person
    add("wp_posts", owner, ID=r.id, post_author=1, post_date=_local(r.created), post_date_gmt=_gmt(r.created),
        post_title=f"Refund &ndash; {_local(r.created):%b %d, %Y @ %I:%M %p}", post_excerpt=r.reason,
        post_status="wc-completed", comment_status="closed", ping_status="closed",
        post_name=f"refund-{_local(r.created):%b-%d-%Y-%I%M-%p}".lower(), post_parent=made.id,
        post_modified=_local(r.created), post_modified_gmt=_gmt(r.created),
        guid=f"{SHOP_URL}/?post_type=shop_order_refund&#038;p={r.id}", post_type="shop_order_refund")
    for key, value in {"_order_currency": "GBP", "_cart_discount": "0", "_order_shipping": "0",
                       "_order_tax": str(-_vat(r.amount)), "_order_total": str(-r.amount),
                       "_order_version": version, "_prices_include_tax": "yes", **refund_meta}.items():
        if value != "":
            add("wp_postmeta", owner, post_id=r.id, meta_key=key, meta_value=value)


def _add_order_items(add: _Add, made: _Order, figures: _Figures) -> None:
    """Order items are the same in both layouts: line items, shipping and tax, each with its meta."""
    def item(name: str, kind: str, values: dict[str, str]) -> None:
        row = add("wp_woocommerce_order_items", made.person, order_item_name=name, order_item_type=kind,
                  order_id=made.id)
        for key, value in values.items():
            add("wp_woocommerce_order_itemmeta", made.person, order_item_id=row["order_item_id"], meta_key=key,
                meta_value=value)

    product_ids = _world().product_ids
    for index, quantity, gross in figures.items:
        tax = _vat(gross)
        taxes = f'a:1:{{i:1;s:{len(str(tax))}:"{tax}";}}'  # PHP-serialised, as WooCommerce stores it
        tax_data = f'a:2:{{s:5:"total";{taxes}s:8:"subtotal";{taxes}}}'
        item(_PRODUCTS[index][0], "line_item", {
            "_product_id": str(product_ids[index]), "_variation_id": "0", "_qty": str(quantity), "_tax_class": "",
            "_line_subtotal": str(gross - tax), "_line_subtotal_tax": str(tax), "_line_total": str(gross - tax),
            "_line_tax": str(tax), "_line_tax_data": tax_data, "_reduced_stock": str(quantity)})
    ship_tax = figures.ship_tax
    item(figures.ship_name, "shipping", {
        "method_id": figures.method_id, "instance_id": figures.instance, "cost": str(figures.ship_gross - ship_tax),
        "total_tax": str(ship_tax), "Items": ", ".join(f"{_PRODUCTS[i][0]} &times; {q}" for i, q, _ in figures.items)})
    item("GB-VAT-1", "tax", {"rate_id": "1", "label": "VAT", "compound": "", "tax_amount": str(figures.cart_tax),
                             "shipping_tax_amount": str(ship_tax), "rate_percent": "20"})


# ---------------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------------

def seed_woo_shop(engine: Engine, layout: str) -> int:
    """Create the layout's tables and the search indexes (SEARCH_INDEXES), and load the rows once; a
    shop that has users is kept as it is (so that what rights requests changed stays changed).
    Returns the rows loaded. One database holds one layout."""
    metadata = _metadata(layout)
    metadata.create_all(engine)
    backend = search_backend(engine)
    with engine.begin() as conn:
        for name in metadata.tables:
            for ddl in SEARCH_INDEXES.get(backend, {}).get(name, ()):
                conn.exec_driver_sql(ddl)
    data = woo_data(layout)
    users = metadata.tables["wp_users"]
    with engine.begin() as conn:
        if conn.execute(select(users.c.ID).limit(1)).first():
            return 0
        for name, table in metadata.tables.items():
            if data.rows[name]:
                conn.execute(insert(table), data.rows[name])
    return sum(len(rows) for rows in data.rows.values())


# ---------------------------------------------------------------------------------------------
# The truth
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WooTruth:
    person: WooPerson
    rows: dict[str, set]  # table -> primary keys of the rows that are the person's
    held: dict[str, set]  # table -> other people's rows to list as possible matches, never to act on
    ips: frozenset[str]  # IP addresses on the person's own rows
    shared_ips: frozenset[str]  # those also on someone else's rows
    kept_non_personal: dict[str, set]  # the person's key-value rows with keys that are not personal
    identities: dict[str, frozenset[str]]  # kind -> the emails and phones found on the person's rows


def _in_scope(layout: str, table: str, row: dict) -> bool:
    return all(row.get(column) in allowed for column, allowed in MAP_SCOPE[layout].get(table, {}).items())


def _identity_values(layout: str, table: str, row: dict) -> list[tuple[str, str]]:
    """(kind, normalised value) of the row's identity columns or identity key."""
    found = []
    for column, kind in IDENTITY_COLUMNS[layout].get(table, {}).items():
        if (value := NORMALISE[kind](row[column])) is not None:
            found.append((kind, value))
    if table in KEY_VALUE[layout]:
        key_column, value_column, _personal, identities = KEY_VALUE[layout][table]
        identity = identities.get(row[key_column])
        if identity and (value := NORMALISE[identity](row[value_column])) is not None:
            found.append((identity, value))
    excluded = {(kind, NORMALISE[kind](v)) for kind, values in NOT_IDENTITIES.items() for v in values}
    return [pair for pair in found if pair not in excluded]


def woo_truth(data: WooData, email: str) -> WooTruth | None:
    """What the shop holds about the person with this email (any address they used), or None."""
    wanted = normalised_email(email)
    person = next((p for p in data.people if wanted in p.emails), None)
    if person is None:
        return None
    layout = data.layout
    rows, kept, held = defaultdict(set), defaultdict(set), defaultdict(set)
    in_map = [(table, row) for table in MAP_TABLES[layout] for row in data.rows[table] if _in_scope(layout, table, row)]
    for table, row in in_map:
        pk = row[PRIMARY_KEYS[table]]
        if data.owner.get((table, pk)) != person.key:
            continue
        if table in KEY_VALUE[layout]:
            key_column, _value, personal, _identities = KEY_VALUE[layout][table]
            if row[key_column] not in personal:
                kept[table].add(pk)
                continue
        rows[table].add(pk)
    mine = [(table, row) for table, row in in_map if row[PRIMARY_KEYS[table]] in rows.get(table, ())]
    found = {(kind, value) for table, row in mine for kind, value in _identity_values(layout, table, row)}
    identities = {kind: frozenset(v for k, v in found if k == kind) for kind in ("email", "phone")}
    ips = frozenset(v for k, v in found if k == "ip")
    shared = set()
    for table, row in in_map:
        pk = row[PRIMARY_KEYS[table]]
        if data.owner.get((table, pk)) == person.key:
            continue
        for kind, value in _identity_values(layout, table, row):
            if kind == "ip":
                shared |= {value} & ips
            elif value in identities.get(kind, ()):
                held[table].add(pk)
        if reference := NON_OWNER_REFERENCES[layout].get(table):
            column, parent_table = reference
            if row[column] in rows.get(parent_table, ()):
                held[table].add(pk)
    return WooTruth(person, dict(rows), dict(held), ips, frozenset(shared), dict(kept), identities)

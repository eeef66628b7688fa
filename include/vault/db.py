"""Engines for SQLite, PostgreSQL and MariaDB, set up alike for the vault and the key store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Connection, DateTime, Engine, LargeBinary, Table, create_engine, event, insert
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

from include.common.errors import VaultError
from include.common.urls import display_url

# A table only the key store has, and one only the vault has (include/vault/schema.py; this module
# cannot import it, schema imports this one). A test checks the names.
KEY_TABLE = "data_key"
VAULT_TABLE = "vault_meta"


def _has_table(dialect: str, dbapi_connection, table: str) -> bool:
    """Whether the database of a fresh DBAPI connection has `table` (a constant name)."""
    in_schema = f"SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{table}'"
    queries = {
        "sqlite": f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{table}'",
        "postgresql": f"SELECT 1 WHERE to_regclass('{table}') IS NOT NULL",  # by search_path, as the tables are made
        "mysql": in_schema,
        "mariadb": in_schema,
    }
    if dialect not in queries:
        return False
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(queries[dialect])
        found = cursor.fetchone() is not None
    finally:
        cursor.close()
    if dialect != "sqlite":
        dbapi_connection.rollback()  # end the transaction the driver opened for the query
    return found


def _refuse_database_holding(engine: Engine, table: str, message: str) -> None:
    """The engine's first connection checks that its database has no `table`; if it has, that and
    every later connection is refused with VaultError(message) until the table is gone."""
    checked = False

    @event.listens_for(engine, "connect")
    def _check(dbapi_connection, _record):
        nonlocal checked
        if checked:
            return
        if _has_table(engine.dialect.name, dbapi_connection, table):
            dbapi_connection.close()
            raise VaultError(message)
        checked = True


def make_engine(url: str, *, secure_delete: bool = False) -> Engine:
    """An engine whose transactions serialise writers on every backend.

    The key store's engine (secure_delete: only the key store asks for it) refuses a database that
    holds the vault's tables, and every other engine (the vault's) one that holds data keys: a copy
    of the vault must never hold the keys, whatever two URLs were given for one database.

    SQLite: WAL for readers alongside a writer, BEGIN IMMEDIATE so two writers queue instead of
    failing on lock upgrade, and optionally secure_delete so destroyed keys are overwritten on disk.
    In WAL mode synchronous=NORMAL never corrupts the database; a power cut may undo the last
    commits, which every workflow redoes on its next run. The key store keeps full syncs: a key
    destruction, once reported, must stay done.
    """
    parsed = make_url(url)
    where = display_url(url)
    if secure_delete:
        refused = (VAULT_TABLE, f"the key store at {where} holds the vault's tables ({VAULT_TABLE}): "
                                "the key store must be a database of its own, apart from the vault")
    else:
        refused = (KEY_TABLE, f"the database at {where} holds data keys (table {KEY_TABLE}): the vault "
                              "must be another database from the key store (GDPR_KEYSTORE_URL); "
                              "move the keys to their own database and drop the table from this one")
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True)
        _refuse_database_holding(engine, *refused)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below opens transactions
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Takes effect when the file is created: bigger pages mean fewer B-tree splits on ingest.
        cursor.execute("PRAGMA page_size = 16384")
        if secure_delete:
            cursor.execute("PRAGMA secure_delete = ON")
        else:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Checkpoint every 64 MiB of WAL (16 KiB pages), not every 4: an index page that several
            # ingest batches touch is copied into the database once.
            cursor.execute("PRAGMA wal_autocheckpoint = 4096")
        cursor.execute("PRAGMA cache_size = -65536")  # KiB: the blind-index B-tree stays in memory
        cursor.execute("PRAGMA mmap_size = 268435456")
        cursor.close()

    _refuse_database_holding(engine, *refused)

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Insert many rows, each a tuple of values for `columns`.

    On SQLite the tuples go straight to the driver's executemany, with only the column types' own
    bind processors applied: SQLAlchemy's per-row parameter handling would otherwise cost more than
    the insert itself. Server backends keep SQLAlchemy's multi-row VALUES batching.
    """
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    # sqlite3 binds bytes as a BLOB itself; LargeBinary's processor would only copy them.
    processors = [(i, p) for i, name in enumerate(columns)
                  if not isinstance(table.c[name].type, LargeBinary)
                  and (p := table.c[name].type.bind_processor(dialect)) is not None]
    if processors:
        # A batch repeats its values (one timestamp for all, None for most optional columns): each
        # column's distinct values are processed once, and the rows rebuilt from the columns.
        values_of = list(zip(*rows, strict=True))
        for i, process in processors:
            processed = {value: _as_sqlite_text(process(value)) for value in set(values_of[i])}
            values_of[i] = tuple(map(processed.__getitem__, values_of[i]))
        rows = list(zip(*values_of, strict=True))
    quote = dialect.identifier_preparer.quote
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})", rows)


def _as_sqlite_text(value: object) -> object:
    """A date or datetime as the text sqlite3's default adapters write, once per distinct value
    instead of once per row."""
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (MariaDB has no zone-aware type), always returned aware."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        # MariaDB's DATETIME drops microseconds unless asked; audit hashes cover them.
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the vault; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=UTC)

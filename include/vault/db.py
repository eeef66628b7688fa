"""Engines for SQLite, PostgreSQL and MariaDB, set up alike for the vault and the key store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from collections.abc import Sequence

from sqlalchemy import Connection, DateTime, Engine, LargeBinary, Table, create_engine, event, insert
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, *, secure_delete: bool = False) -> Engine:
    """An engine whose transactions serialise writers on every backend.

    SQLite: WAL for readers alongside a writer, BEGIN IMMEDIATE so two writers queue instead of
    failing on lock upgrade, and optionally secure_delete so destroyed keys are overwritten on disk.
    In WAL mode synchronous=NORMAL never corrupts the database; a power cut may undo the last
    commits, which every workflow redoes on its next run. The key store keeps full syncs: a key
    destruction, once reported, must stay done.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
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
        # A batch repeats its values (one timestamp for all, None for most optional columns).
        memos: list[dict] = [{} for _ in processors]
        processed = []
        for row in rows:
            values = list(row)
            for (i, process), memo in zip(processors, memos):
                value = values[i]
                try:
                    values[i] = memo[value]
                except KeyError:
                    values[i] = memo[value] = process(value)
            processed.append(tuple(values))
        rows = processed
    quote = dialect.identifier_preparer.quote
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})", rows)


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

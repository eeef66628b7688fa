"""Engines for SQLite, PostgreSQL and MariaDB, set up alike for the vault and the key store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Engine, create_engine, event
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
        if secure_delete:
            cursor.execute("PRAGMA secure_delete = ON")
        else:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


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

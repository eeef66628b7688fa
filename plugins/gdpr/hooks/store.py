"""The client-store hook: a SQLAlchemy engine for a store the data map names by Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from include.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Engine

# Airflow connection types and the SQLAlchemy drivers the project pins for them.
DRIVERS = {"postgres": "postgresql+psycopg2", "mysql": "mysql+pymysql", "sqlite": "sqlite"}


class ClientStoreHook(BaseHook):
    """
    A PostgreSQL, MySQL/MariaDB or SQLite connection, or any with extra ``sqlalchemy_url``.

    :param store_conn_id: the Airflow connection of the client's store.
    """

    conn_name_attr = "store_conn_id"
    default_conn_name = "client_store_default"
    conn_type = "gdpr_client_store"
    hook_name = "GDPR client store"

    def __init__(self, store_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store_conn_id = store_conn_id

    def url(self):
        from sqlalchemy.engine import URL, make_url

        conn = self.get_connection(self.store_conn_id)
        if conn.password:
            mask_secret(conn.password)
        if url := conn.extra_dejson.get("sqlalchemy_url"):
            return make_url(url)
        if conn.conn_type not in DRIVERS:
            raise InvalidInput(f"connection '{self.store_conn_id}': type '{conn.conn_type}' is not one of "
                               f"{', '.join(DRIVERS)} and it has no extra 'sqlalchemy_url'")
        if conn.conn_type == "sqlite":
            return URL.create("sqlite", database=conn.host)
        return URL.create(DRIVERS[conn.conn_type], username=conn.login, password=conn.password or None,
                          host=conn.host, port=conn.port, database=conn.schema)

    def get_conn(self) -> Engine:
        from sqlalchemy import create_engine

        return create_engine(self.url(), pool_pre_ping=True)

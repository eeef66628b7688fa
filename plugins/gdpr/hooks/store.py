"""The client-store hook: a SQLAlchemy engine for a store the data map names by Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from include.admin.provider import CLIENT_STORE_CONNECTION

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL


class ClientStoreHook(BaseHook):
    """
    A PostgreSQL, MySQL/MariaDB or SQLite connection, or any with extra ``sqlalchemy_url``; named like
    common-sql's hooks (``sqlalchemy_url``, ``get_sqlalchemy_engine``, ``get_conn`` for DBAPI).

    :param store_conn_id: the Airflow connection of the client's store.
    """

    conn_name_attr = "store_conn_id"
    default_conn_name = "client_store_default"
    conn_type = CLIENT_STORE_CONNECTION
    hook_name = "GDPR client store"

    def __init__(self, store_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store_conn_id = store_conn_id

    @property
    def sqlalchemy_url(self) -> URL:
        from include.stores.connections import store_url

        conn = self.get_connection(self.store_conn_id)
        if conn.password:
            mask_secret(conn.password)
        return store_url(self.store_conn_id, conn_type=conn.conn_type, host=conn.host, login=conn.login,
                         password=conn.password, port=conn.port, schema=conn.schema, extra=conn.extra_dejson)

    def get_sqlalchemy_engine(self, engine_kwargs: dict[str, Any] | None = None) -> Engine:
        from sqlalchemy import create_engine

        return create_engine(self.sqlalchemy_url, **{"pool_pre_ping": True, **(engine_kwargs or {})})

    def get_conn(self) -> Any:
        """A DBAPI connection to the store."""
        return self.get_sqlalchemy_engine().raw_connection()

"""How a client store's Airflow connection becomes a SQLAlchemy URL: one rule for the hook the
workflows use and for `gdpr-admin datamap validate --live`, which reads the same connection from its
AIRFLOW_CONN_<ID> environment variable (JSON or URI), as the Makefile and docker-compose give it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy.engine import URL, make_url

from include.common.errors import InvalidInput

# Airflow connection types and the SQLAlchemy drivers the project pins for them.
DRIVERS = {"postgres": "postgresql+psycopg2", "mysql": "mysql+pymysql", "sqlite": "sqlite"}


def store_url(conn_id: str, *, conn_type: str | None, host: str | None = None, login: str | None = None,
              password: str | None = None, port: int | None = None, schema: str | None = None,
              extra: Mapping | None = None) -> URL:
    """The URL of a connection of type postgres, mysql or sqlite, or of any with extra sqlalchemy_url."""
    if extra and extra.get("sqlalchemy_url"):
        return make_url(extra["sqlalchemy_url"])
    if conn_type not in DRIVERS:
        raise InvalidInput(f"connection '{conn_id}': type '{conn_type}' is not one of {', '.join(DRIVERS)} and it "
                           "has no extra 'sqlalchemy_url'")
    if conn_type == "sqlite":
        return URL.create("sqlite", database=host)
    return URL.create(DRIVERS[conn_type], username=login, password=password or None, host=host, port=port,
                      database=schema)


def url_from_environment(conn_id: str, environ: Mapping[str, str] = os.environ) -> URL | None:
    """The URL of the connection given as AIRFLOW_CONN_<ID>, or None if it is not set there."""
    raw = environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw is None:
        return None
    if raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw)
            extra = data.get("extra") or {}
            extra = json.loads(extra) if isinstance(extra, str) else extra
        except (ValueError, AttributeError):
            raise InvalidInput(f"AIRFLOW_CONN_{conn_id.upper()} is not a JSON connection") from None
        return store_url(conn_id, conn_type=data.get("conn_type"), host=data.get("host"), login=data.get("login"),
                         password=data.get("password"), port=data.get("port"), schema=data.get("schema"),
                         extra=extra)
    parts = urlsplit(raw)
    return store_url(conn_id, conn_type=parts.scheme.replace("-", "_"), host=unquote(parts.hostname or "") or None,
                     login=unquote(parts.username) if parts.username else None,
                     password=unquote(parts.password) if parts.password else None, port=parts.port,
                     schema=unquote(parts.path.lstrip("/")) or None, extra=dict(parse_qsl(parts.query)))

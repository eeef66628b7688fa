"""Shared fixtures: the vault on SQLite, PostgreSQL and MariaDB, and an Airflow home per session.

PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) are real servers. When one is down, its
tests skip with a message naming it, except in CI (see `ci_requires_services`), where they fail.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import: set it before any test imports Airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="gdpr-airflow-home-")
os.environ.update({
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
})
for name in [n for n in os.environ if n.startswith("GDPR_")]:
    del os.environ[name]

SERVERS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}",
}
SERVER_ADMIN_DB = {"postgresql": "test", "mariadb": "test"}
BACKENDS = ["sqlite", *SERVERS]


def ci_requires_services() -> bool:
    """Whether a missing service fails the run instead of skipping: CI set to anything but empty, "false",
    "0" or "no" (CI systems set CI=true, CI=1 or CI=yes). The one place that decides skip or fail."""
    return os.environ.get("CI", "").strip().lower() not in ("", "false", "0", "no")


def service_missing(name: str, reason: str) -> None:
    message = f"{name} is not reachable at {SERVERS[name].split('@')[1].split('/')[0]}: {reason}"
    if ci_requires_services():
        pytest.fail(f"{message} (CI requires every service)")
    pytest.skip(message)


class ServerDatabases:
    """Throwaway databases on one server, made once per session and emptied per test."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.names = [f"gdpr_test_{os.getpid()}_{kind}" for kind in ("vault", "keys", "copy")]
        self.admin = sa.create_engine(SERVERS[backend].format(db=SERVER_ADMIN_DB[backend]),
                                      isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            for name in self.names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
                conn.exec_driver_sql(f"CREATE DATABASE {name}")

    def url(self, kind: str) -> str:
        return SERVERS[self.backend].format(db=f"gdpr_test_{os.getpid()}_{kind}")

    def empty(self) -> None:
        for name in self.names:
            engine = sa.create_engine(SERVERS[self.backend].format(db=name))
            meta = sa.MetaData()
            meta.reflect(engine)
            meta.drop_all(engine)
            engine.dispose()

    def drop(self) -> None:
        with self.admin.connect() as conn:
            if self.backend == "postgresql":
                for name in self.names:
                    conn.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            for name in self.names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        self.admin.dispose()


_servers: dict[str, ServerDatabases | str] = {}


def server_databases(backend: str) -> ServerDatabases:
    if backend not in _servers:
        try:
            _servers[backend] = ServerDatabases(backend)
        except sa.exc.OperationalError as exc:
            _servers[backend] = type(exc.orig).__name__ + ": " + str(exc.orig).splitlines()[0]
    found = _servers[backend]
    if isinstance(found, str):
        service_missing(backend, found)
    return found


def var_listing() -> set[str]:
    """Every path under the checkout's var/ (the default place of the vault, keyring and workflow files),
    but var/airflow: an Airflow started by `make run` beside the tests keeps writing there, and the tests
    have an Airflow home of their own (above)."""
    var = PROJECT_ROOT / "var"
    paths = (path.relative_to(var) for path in var.rglob("*"))
    return {str(path) for path in paths if path.parts[0] != "airflow"}


@pytest.fixture(scope="session", autouse=True)
def nothing_new_under_var():
    """Tests write under tmp_path only: one that wrote into the checkout's var/ (a developer's own vault,
    inbox, outbox) fails the run here, at the teardown of the session's last test, naming what it made."""
    before = var_listing()
    yield
    made = sorted(var_listing() - before)
    assert not made, f"the tests made {len(made)} path(s) under {PROJECT_ROOT / 'var'}: {made[:10]}"


def pytest_sessionfinish(session, exitstatus):
    for found in _servers.values():
        if isinstance(found, ServerDatabases):
            found.drop()


@pytest.fixture
def airflow_metadata_url():
    """A fresh PostgreSQL database for the metadata of a real scheduler. With SQLite, one writer at a
    time, `airflow backfill create` beside a running scheduler can fail with "database is locked"."""
    databases = server_databases("postgresql")
    name = f"gdpr_test_{os.getpid()}_airflow"
    with databases.admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield SERVERS["postgresql"].format(db=name)
    with databases.admin.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_urls(backend, tmp_path) -> dict[str, str]:
    """URLs of an empty vault database, key store, and a spare database for copies."""
    if backend == "sqlite":
        return {kind: f"sqlite:///{tmp_path / f'{kind}.db'}" for kind in ("vault", "keys", "copy")}
    databases = server_databases(backend)
    databases.empty()
    return {kind: databases.url(kind) for kind in ("vault", "keys", "copy")}


@pytest.fixture
def vault_settings(store_urls, tmp_path):
    from include.common.settings import VaultSettings
    from include.crypto.keyring import create_keyring

    keyring_path = tmp_path / "keyring" / "keyring.json"
    create_keyring(keyring_path)
    return VaultSettings(vault_url=store_urls["vault"], keystore_url=store_urls["keys"],
                         keyring_path=keyring_path)


@pytest.fixture
def vault(vault_settings):
    from include.vault.store import Vault

    with Vault.open(vault_settings, create=True) as opened:
        yield opened


@pytest.fixture
def demo_vault(vault):
    from include.demo.people import seed_demo

    seed_demo(vault)
    return vault

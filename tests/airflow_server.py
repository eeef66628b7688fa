"""A real Airflow (API server and scheduler, LocalExecutor) in its own home with its metadata on
PostgreSQL, for tests that need `airflow backfill create` or the REST API; and demo vaults to point
it at."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bench.cluster import free_port
from include.common.settings import VaultSettings
from include.crypto.keyring import create_keyring
from include.demo.people import seed_demo
from include.vault.store import Vault

BACKFILL_TIMEOUT_S = 420


def demo_vault_in(directory: Path) -> VaultSettings:
    create_keyring(directory / "keyring" / "keyring.json")
    settings = VaultSettings(vault_url=f"sqlite:///{directory / 'vault.db'}",
                             keystore_url=f"sqlite:///{directory / 'keys.db'}",
                             keyring_path=directory / "keyring" / "keyring.json")
    with Vault.open(settings, create=True) as vault:
        seed_demo(vault)
    return settings


def connection_json(settings: VaultSettings) -> str:
    return json.dumps({"conn_type": "gdpr-vault", "extra": {
        "database_url": settings.vault_url, "keystore_url": settings.keystore_url,
        "keyring_path": str(settings.keyring_path)}})


class Airflow:
    """A scheduler and an API server (for the tasks' execution API) in their own Airflow home."""

    def __init__(self, home: Path, env: dict[str, str], metadata_url: str) -> None:
        self.home = home
        self.metadata_url = metadata_url
        self.port = port = free_port()
        self.env = {**env, "AIRFLOW_HOME": str(home),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # backfill runs only
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # the REST API without a login
                    "AIRFLOW__API__PORT": str(port),
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/"}
        self.processes: list[subprocess.Popen] = []

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"airflow {' '.join(args)}: {result.stderr[-3000:]}"
        return result.stdout

    def start(self) -> None:
        self.cli("db", "migrate")
        self.cli("dags", "reserialize")
        for component in ("api-server", "scheduler"):
            log = open(self.home / f"{component}.log", "wb")  # noqa: SIM115 - closed with the process
            self.processes.append(subprocess.Popen([sys.executable, "-m", "airflow", component], env=self.env,
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 180
        while True:  # the API server answers before anything is asked of it
            try:
                if httpx.get(f"http://localhost:{self.port}/api/v2/monitor/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the API server did not answer in 180 s: {(self.home / 'api-server.log').read_text()[-3000:]}")
            time.sleep(1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait_for_backfill(self, dag_id: str, count: int) -> dict[datetime, str]:
        engine = sa.create_engine(self.metadata_url)
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        try:
            while True:
                with engine.connect() as conn:
                    runs = conn.execute(sa.text(
                        "SELECT logical_date, run_id, state FROM dag_run WHERE dag_id = :dag "
                        "AND run_type = 'backfill' ORDER BY logical_date"), {"dag": dag_id}).all()
                states = [state for _, _, state in runs]
                if len(runs) == count and all(state in ("success", "failed") for state in states):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"backfill runs not finished in {BACKFILL_TIMEOUT_S} s: {states}; "
                                f"scheduler log ends: {(self.home / 'scheduler.log').read_text()[-3000:]}")
                time.sleep(2)
        finally:
            engine.dispose()
        assert states == ["success"] * count, f"backfill runs ended {states}"
        return {datetime.fromisoformat(str(day)).replace(tzinfo=UTC): run_id for day, run_id, _ in runs}

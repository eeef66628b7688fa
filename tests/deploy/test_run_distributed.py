"""The native scale-out path as the README gives it: `make init-distributed`, then `make run-distributed`
(the Procfile under honcho) on PostgreSQL and Redis, with the workflow files in a VAR_DIR standing for the
shared storage. Every component passes the start-up check and comes up healthy, the scheduled runs succeed
on the Celery worker; a second "machine" whose work dir is a local folder, or whose JWT secret differs, is
refused at start with the setting named. Everything started is stopped."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bench.cluster import free_port, group_members
from include.admin.deploy_check import MARKER
from tests.conftest import PROJECT_ROOT


def make(target: str, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(PROJECT_ROOT), target, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_until(what: str, ready, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not in {timeout:.0f} s: {log.read_text()[-4000:]}")
        time.sleep(1)


def health(port: int) -> dict:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_make_run_distributed_starts_a_checked_celery_cluster(store_urls, airflow_metadata_url, broker_url,
                                                              tmp_path):
    port = free_port()
    var, home = tmp_path / "shared", tmp_path / "airflow-home"
    env = {**os.environ,
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_metadata_url,
           "AIRFLOW__CELERY__BROKER_URL": broker_url,
           "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_metadata_url,
           "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
           "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
           "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "GDPR_VAULT_URL": store_urls["vault"], "GDPR_KEYSTORE_URL": store_urls["keys"]}
    where = [f"VAR_DIR={var}", f"AIRFLOW_HOME={home}"]

    init = make("init-distributed", env, *where)
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    assert "init-distributed: settings and shared folders recorded" in init.stdout
    assert {p.parent.name for p in var.rglob(MARKER)} == {"work", "outbox", "reports", "server-logs", "inbox",
                                                          "keyring", "logs"}

    log = tmp_path / "run-distributed.log"
    with log.open("wb") as out:
        cluster = subprocess.Popen(["make", "--no-print-directory", "-C", str(PROJECT_ROOT), "run-distributed",
                                    *where, "WORKERS=1"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until("every component healthy", lambda: health(port) and all(
            part.get("status") == "healthy" for part in health(port).values()), log)
        text = log.read_text()
        for component in ("apiserver", "scheduler", "dagprocessor", "triggerer", "worker"):
            assert f"{component}: settings and shared folders match" in text, component
        engine = sa.create_engine(airflow_metadata_url)
        try:
            def a_run_succeeded() -> bool:
                with engine.connect() as conn:
                    states = conn.execute(sa.text("SELECT state FROM dag_run")).scalars().all()
                assert "failed" not in states, log.read_text()[-4000:]
                return "success" in states
            wait_until("a scheduled run to succeed on the worker", a_run_succeeded, log)
        finally:
            engine.dispose()

        local = make("run-distributed", {**env, "GDPR_WORK_DIR": str(tmp_path / "local-work")}, *where,
                     "PROCESSES=worker", "WORKERS=1", timeout=120)
        assert local.returncode != 0, local.stdout[-3000:]
        assert f"error: worker: GDPR_WORK_DIR ({tmp_path / 'local-work'}) is not the cluster's shared folder" in \
            local.stdout, local.stdout[-3000:]
        jwt = secrets.token_urlsafe(48)
        stranger = make("run-distributed", {**env, "AIRFLOW__API_AUTH__JWT_SECRET": jwt}, *where,
                        "PROCESSES=worker", "WORKERS=1", timeout=120)
        assert stranger.returncode != 0, stranger.stdout[-3000:]
        assert "error: worker: AIRFLOW__API_AUTH__JWT_SECRET differs" in stranger.stdout, stranger.stdout[-3000:]
        assert jwt not in stranger.stdout
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=60)
        finally:
            left = group_members(cluster.pid)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived run-distributed's SIGTERM: {left}"

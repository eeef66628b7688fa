"""Airflow on CeleryExecutor as the scale-out runs it, on this machine: an API server, a scheduler, a DAG
processor and named Celery workers, each its own process group, with the metadata on PostgreSQL and the
broker on Redis. The settings that must match across machines (JWT secret, Fernet key, execution API
URL, shared paths) are given to every component alike.

One implementation for the deploy tests (tests/deploy/test_celery.py) and the throughput benchmark
(bench/celery.py): each adds its own settings; neither imports the other's framework (no pytest here).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Each worker reports its own name as its task instances' hostname: workers on one machine share its
# hostname, and whoever started them must see where each task ran.
WORKER_NAME_VARIABLE = "GDPR_CLUSTER_WORKER"


class ClusterError(RuntimeError):
    """A component that exited, was not ready in time, or refused a command; with its log's end."""


def worker_hostname() -> str:
    """Airflow's hostname_callable in the workers of a CeleryCluster."""
    return os.environ[WORKER_NAME_VARIABLE]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
        except (ProcessLookupError, psutil.Error):
            continue
    return found


class CeleryCluster:
    """settings: Airflow settings (environment variables) of every component on top of the cluster's own;
    site: a folder put first on the components' PYTHONPATH (an airflow_local_settings.py of the caller's);
    concurrency: task slots of each worker."""

    def __init__(self, home: Path, env: dict[str, str], metadata_url: str, broker_url: str, *,
                 settings: dict[str, str] | None = None, site: Path | None = None, concurrency: int = 2) -> None:
        self.home = home
        self.metadata_url = metadata_url
        self.concurrency = concurrency
        self.port = free_port()
        self.env = {
            **env, **(settings or {}),
            "AIRFLOW_HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "PYTHONPATH": os.pathsep.join([*([str(site)] if site else []), str(PROJECT_ROOT)]),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "gdpr.celery_config.CELERY_CONFIG",  # as deployed
            # The driver named: a bare db+postgresql:// means psycopg 3 under SQLAlchemy 2.1, not installed.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # the REST API without a login
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # triggered runs only
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self._engine: sa.Engine | None = None

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0:
            raise ClusterError(f"airflow {' '.join(args)}: {result.stderr[-3000:]}")
        return result.stdout

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.home / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env,
                                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, workers: list[str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        for component in ("api-server", "scheduler", "dag-processor"):
            self._spawn(component, [component], self.env)
        for name in workers:
            # Logs are written where the API server reads them, so no worker serves its own (two on one
            # machine would both want port 8793).
            self._spawn(name, ["celery", "worker", "--celery-hostname", f"{name}@%h",
                               "--concurrency", str(self.concurrency), "--skip-serve-logs"],
                        {**self.env, WORKER_NAME_VARIABLE: name,
                         "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname"})
        self._wait("the API server", "api-server", self._api_healthy)
        for name in workers:  # Celery logs "<name>@<host> ready." once it consumes
            self._wait(f"Celery worker {name}", name, lambda n=name: re.search(rf" {n}@\S+ ready\.", self.log(n)))

    def _api_healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, what: str, log: str, ready, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ClusterError(f"{name} exited with {process.returncode}: {self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} not ready in {timeout:.0f} s: {self.log(log)[-3000:]}")
            time.sleep(0.5)

    def wait_for_dags(self, *dag_ids: str) -> None:
        def parsed() -> bool:
            return all(httpx.get(f"http://127.0.0.1:{self.port}/api/v2/dags/{d}", timeout=10).status_code == 200
                       for d in dag_ids)
        self._wait(f"DAGs {dag_ids}", "dag-processor", parsed)

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None) -> str:
        """Through the REST API, as an agency's system or staff member would."""
        body = {"logical_date": None, "conf": conf, **({"dag_run_id": run_id} if run_id else {})}
        response = httpx.post(f"http://127.0.0.1:{self.port}/api/v2/dags/{dag_id}/dagRuns", json=body, timeout=60)
        if response.status_code != 200:
            raise ClusterError(f"triggering {dag_id}: {response.status_code} {response.text[:1000]}")
        return response.json()["dag_run_id"]

    def query(self, sql: str, **params) -> list:
        """Rows of a query on the metadata database; a list parameter stands for an IN (...) list."""
        if self._engine is None:  # one pool for all the polling, closed by stop()
            self._engine = sa.create_engine(self.metadata_url)
        statement = sa.text(sql).bindparams(*(sa.bindparam(k, expanding=True)
                                              for k, v in params.items() if isinstance(v, list | tuple)))
        with self._engine.connect() as conn:
            return conn.execute(statement, params).all()

    def wait_for_runs(self, runs: list[tuple[str, str]], timeout: float = 240) -> dict[str, str]:
        """{run_id: final state} of the (dag_id, run_id) runs."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for dag_id in {dag_id for dag_id, _ in runs}:
                states.update(self.query("SELECT run_id, state FROM dag_run WHERE dag_id = :d AND run_id IN :r",
                                         d=dag_id, r=[run_id for d, run_id in runs if d == dag_id]))
            if all(state in ("success", "failed") for state in states.values()):
                return states
            if time.monotonic() > deadline:
                raise ClusterError(f"runs not finished in {timeout:.0f} s: {states}; scheduler log ends: "
                                   f"{self.log('scheduler')[-3000:]}")
            time.sleep(1)

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float) -> str:
        """The hostname (the worker's name) of the task instance once it is in that state."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query("SELECT state, hostname FROM task_instance WHERE dag_id = :d AND run_id = :r "
                               "AND task_id = :t", d=dag_id, r=run_id, t=task_id)
            if found and found[0][0] == state and found[0][1]:
                return found[0][1]
            if time.monotonic() > deadline:
                raise ClusterError(f"{task_id} of {run_id} not {state} in {timeout:.0f} s: {found}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL the component's whole process group (main process, pool, task supervisors and tasks), as
        when its machine dies; wait until none of it is left."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while left := group_members(process.pid):
            if time.monotonic() > deadline:
                raise ClusterError(f"{name}'s processes outlived SIGKILL: {left}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # A group's stragglers (a worker's task supervisors) go with it, whatever became of its leader.
        for process in self.processes.values():
            for pid in group_members(process.pid):
                os.kill(pid, signal.SIGKILL)

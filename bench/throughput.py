"""Goal 8: access requests an hour on the CeleryExecutor, on this machine, with two Celery workers.

The scale-out shape of README's "Scale out" (bench/cluster.py, the deploy test's cluster): an API server,
a scheduler, a DAG processor and two Celery workers, the metadata on a throwaway PostgreSQL database,
the broker on a Redis database of its own, the vault, its key store and the demo shop on throwaway
PostgreSQL databases, and the workflow files in one folder standing for the shared storage. N access
requests of the demo shop's customers are triggered through the REST API as `dsar_fulfilment` runs
(the form's conf), all at once; the figure is N over the time from the first trigger to the last
run's end. The DAG runs 8 requests at once (REQUEST_RUNS_AT_ONCE); the rest wait in its queue.
Each run is one request: its tasks run one after the other, the stores' searches side by side.

Where the time goes is read from the metadata afterwards (each run's and task instance's timestamps)
and from the CPU time of each component's processes: the gaps between a task's upstream ending and
its start (the scheduler's reaction, the queue, the worker's pick-up and task start-up), the task
instances themselves, and the machine's cores.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import psutil
import redis
import sqlalchemy as sa

from bench.cluster import PROJECT_ROOT, CeleryCluster, group_members
from bench.common import heading, out, progress, verdict
from bench.ingest import PgDatabases, PgTarget
from include.common.settings import VaultSettings, WorkflowSettings
from include.crypto.keyring import create_keyring
from include.demo.people import seed_demo
from include.demo.shop import SHOP_CONTROLLER, seed_demo_logs, seed_shop, shop_data
from include.policies.instructions import load_instruction_dir
from include.vault.store import Vault

GOAL_PER_HOUR = 1_000
DAG_ID = "dsar_fulfilment"
WORKERS = ["worker-1", "worker-2"]
# Names of their own, so that a run beside the deploy tests (Redis database 13, gdpr_test_* databases)
# meets none of theirs.
BROKER_URL = "redis://127.0.0.1:6379/14"
DATABASES = {kind: f"gdpr_bench_celery_{kind}" for kind in ("airflow", "vault", "keys", "shop")}
WORKER_CONCURRENCY = 8
# Deployment settings tuned for throughput on this machine, printed with the figures. Each worker's 8
# slots (16 in all) leave room for the runs at once, each a chain of one or two task instances at a time.
TUNING = {
    "AIRFLOW__CORE__PARALLELISM": str(len(WORKERS) * WORKER_CONCURRENCY),
    # The default (16) would cap the mapped search tasks of the runs at once below the slots.
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
    "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "32",
    # The DAG files do not change during the run: the DAG processor need not re-parse them on two cores.
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    # Two API server workers: every task start, heartbeat and end is a call to the execution API.
    "AIRFLOW__API__WORKERS": "2",
}
# The chain of a request's tasks (gdpr.operators.requests.request_steps), in order.
STAGES = ["register_or_select_requests", "plan_store_searches", "search_store", "plan_log_searches",
          "search_server_logs", "package_and_deliver"]


def _airflow_free_env() -> dict[str, str]:
    """This process's environment without Airflow's or the project's settings: the cluster gets only its own."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "GDPR_")) and k not in ("PYTHONPATH",)}


def _seed(pg: PgTarget, root: Path) -> tuple[dict[str, str], list[str]]:
    """The vault and key store with the demo, the demo shop, the demo logs; the cluster's environment
    and the shop customers' emails (never printed)."""
    keyring = root / "keyring" / "keyring.json"
    create_keyring(keyring)
    settings = VaultSettings(vault_url=pg.url(DATABASES["vault"]), keystore_url=pg.url(DATABASES["keys"]),
                             keyring_path=keyring)
    with Vault.open(settings, create=True) as vault:
        seed_demo(vault)
    shop_url = pg.url(DATABASES["shop"])
    shop = sa.create_engine(shop_url)
    try:
        seed_shop(shop)
    finally:
        shop.dispose()
    shared = root / "var"  # what the machines would share: one folder on one machine
    seed_demo_logs(shared / "server-logs", load_instruction_dir(WorkflowSettings().instructions_dir))
    env = {**_airflow_free_env(),
           "AIRFLOW_CONN_GDPR_VAULT_DEFAULT": json.dumps({"conn_type": "gdpr-vault", "extra": {
               "database_url": settings.vault_url, "keystore_url": settings.keystore_url,
               "keyring_path": str(keyring)}}),
           "AIRFLOW_CONN_FENLAND_SHOP": json.dumps({"conn_type": "gdpr-client-store",
                                                    "extra": {"sqlalchemy_url": shop_url}}),
           **{f"GDPR_{name}": str(shared / sub) for name, sub in (
               ("SERVER_LOG_ROOT", "server-logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
               ("REPORTS_DIR", "reports"), ("DISCLOSURES_INBOX", "disclosures/inbox"))}}
    return env, [row["email"] for row in shop_data().rows["customers"]]


def _cpu_seconds(cluster: CeleryCluster) -> dict[str, float]:
    """CPU seconds so far of each component's process group: its live processes' own and those of the
    children they reaped (a worker's task processes)."""
    spent = {}
    for name, process in cluster.processes.items():
        total = 0.0
        for pid in group_members(process.pid):
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        spent[name] = total
    return spent


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _wait(cluster: CeleryCluster, runs: list[str], timeout: float) -> dict[str, str]:
    """{run_id: final state}, with progress every 30 s."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 30
    while True:
        states = dict(cluster.query("SELECT run_id, state FROM dag_run WHERE dag_id = :d AND run_id IN :r",
                                    d=DAG_ID, r=runs))
        counts = Counter(states.values())
        if counts["success"] + counts["failed"] == len(runs):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not finished in {timeout:.0f} s: {dict(counts)}")
        if time.monotonic() >= next_report:
            progress(f"goal 8: {dict(counts)}")
            next_report = time.monotonic() + 30
        time.sleep(1)


def _breakdown(cluster: CeleryCluster, runs: list[str], wall: float, cpu: dict[str, float], allowed: int) -> None:
    """Where a run's time goes, from the metadata's timestamps, and the cores' time by component."""
    dag_runs = cluster.query("SELECT run_id, queued_at, start_date, end_date FROM dag_run "
                             "WHERE dag_id = :d AND run_id IN :r", d=DAG_ID, r=runs)
    tis = cluster.query("SELECT run_id, task_id, scheduled_dttm, queued_dttm, start_date, end_date "
                        "FROM task_instance WHERE dag_id = :d AND run_id IN :r AND state = 'success'",
                        d=DAG_ID, r=runs)
    by_run: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for run_id, task_id, scheduled, queued, started, ended in tis:
        by_run[run_id][task_id].append((scheduled, queued, started, ended))
    waits = [(start - queued_at).total_seconds() for _, queued_at, start, _ in dag_runs]
    active = {run_id: (end - start).total_seconds() for run_id, _, start, end in dag_runs}
    # Per stage of each run: from the previous stage's end (the run's start for the first) to the stage's
    # first task instance scheduled (the scheduler's reaction), queued (sent to Celery), started (a
    # worker picked it up and its task process began); then the stage's task instances, first start to
    # last end; the run's end after its last stage.
    phases: dict[str, dict[str, list[float]]] = {stage: defaultdict(list) for stage in STAGES}
    tail = []
    for run_id, _, start, end in dag_runs:
        previous = start
        for stage in STAGES:
            found = by_run[run_id].get(stage)
            if not found:  # a stage with nothing to do is skipped
                continue
            scheduled = min(f[0] for f in found)
            queued = min(f[1] for f in found)
            started = min(f[2] for f in found)
            ended = max(f[3] for f in found)
            phases[stage]["react"].append((scheduled - previous).total_seconds())
            phases[stage]["queue"].append((queued - scheduled).total_seconds())
            phases[stage]["pickup"].append((started - queued).total_seconds())
            phases[stage]["task"].append((ended - started).total_seconds())
            previous = ended
        tail.append((end - previous).total_seconds())
    out(f"runs' wait for one of the {allowed} places (queued to running): median {_median(waits):.1f} s, "
        f"max {max(waits):.1f} s")
    out(f"runs' time running (median {_median(list(active.values())):.1f} s), by stage, medians in seconds:")
    out(f"  {'stage':<28} {'react':>6} {'queue':>6} {'pickup':>7} {'task':>6}   "
        "(react: upstream end to scheduled; queue: to queued;")
    out(f"  {'':<28} {'':>6} {'':>6} {'':>7} {'':>6}    pickup: to the task's start; task: start to end)")
    totals = Counter()
    for stage in STAGES:
        p = phases[stage]
        if not p["task"]:
            continue
        medians = {k: _median(p[k]) for k in ("react", "queue", "pickup", "task")}
        totals.update(medians)
        out(f"  {stage:<28} " + " ".join(f"{medians[k]:>{w}.2f}" for k, w in
                                          (("react", 6), ("queue", 6), ("pickup", 7), ("task", 6))))
    totals["end"] = _median(tail)
    overhead = totals["react"] + totals["queue"] + totals["pickup"] + totals["end"]
    out(f"  sum of medians: scheduling (react + queue + run end {totals['end']:.2f}) "
        f"{totals['react'] + totals['queue'] + totals['end']:.1f} s, pick-up and task start "
        f"{totals['pickup']:.1f} s, task instances {totals['task']:.1f} s: "
        f"{100 * overhead / (overhead + totals['task']):.0f}% of a run outside its tasks")
    busy = sum((ended - started).total_seconds() for *_, started, ended in tis)
    slots = len(WORKERS) * WORKER_CONCURRENCY
    out(f"task instances: {len(tis):,} ({len(tis) / len(runs):.1f} a request), {busy / len(tis):.2f} s each "
        f"on average; slots busy {100 * busy / (wall * slots):.0f}% of {slots} over the run")
    ours = sum(cpu.values())
    out("CPU seconds by component during the run: " + ", ".join(f"{k} {v:,.0f}" for k, v in cpu.items())
        + f"; {ours / len(runs):.1f} s a request, {ours / len(tis):.2f} s a task instance (all components)")


def run(workdir: Path, pg: PgTarget, *, requests: int) -> dict:
    heading(f"Goal 8 - access requests an hour on CeleryExecutor with {len(WORKERS)} workers "
            f"(goal >= {GOAL_PER_HOUR:,}/h; {requests} requests through the REST API)")
    out(f"settings: worker concurrency {WORKER_CONCURRENCY} each; " + ", ".join(
        f"{k.removeprefix('AIRFLOW__')}={v}" for k, v in TUNING.items()) + "; the rest Airflow's defaults")
    out("each worker imports the request workflows' core once at its start (gdpr.celery_config), as deployed")
    broker = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=5)
    # SIGTERM as Ctrl-C: the cluster is stopped, the databases dropped and the broker emptied either way.
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        broker.flushdb()
        with PgDatabases(pg, tuple(DATABASES.values())):
            progress("goal 8: seeding the vault, the shop and the logs; starting the cluster")
            env, emails = _seed(pg, workdir / "celery")
            cluster = CeleryCluster(workdir / "celery" / "airflow-home", env, pg.url(DATABASES["airflow"]),
                                    BROKER_URL, settings=TUNING, concurrency=WORKER_CONCURRENCY)
            try:  # stopped before its databases are dropped
                cluster.start(WORKERS)
                cluster.wait_for_dags(DAG_ID)
                return _measure(cluster, emails, requests)
            finally:
                cluster.stop()
    finally:
        broker.flushdb()
        broker.close()
        signal.signal(signal.SIGTERM, previous_handler)


def _measure(cluster: CeleryCluster, emails: list[str], requests: int) -> dict:
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds(cluster)
    machine_before = _busy_seconds()
    t0 = time.monotonic()
    runs = [cluster.trigger(DAG_ID, {"controller": SHOP_CONTROLLER, "email": emails[i % len(emails)]},
                            run_id=f"bench-{i:05d}") for i in range(requests)]
    triggered = time.monotonic() - t0
    states = _wait(cluster, runs, timeout=300 + 30 * requests)
    wall = time.monotonic() - t0
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _cpu_seconds(cluster).items()}
    machine_busy = _busy_seconds() - machine_before
    per_hour = requests / wall * 3600
    succeeded = Counter(states.values())["success"]
    spread = dict(cluster.query("SELECT hostname, count(*) FROM task_instance WHERE dag_id = :d AND run_id IN :r "
                                "AND state = 'success' GROUP BY hostname ORDER BY hostname", d=DAG_ID, r=runs))
    spans = cluster.query("SELECT start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id IN :r "
                          "AND start_date IS NOT NULL", d=DAG_ID, r=runs)
    at_once = _most_at_once(spans)
    [(allowed,)] = cluster.query("SELECT max_active_runs FROM dag WHERE dag_id = :d", d=DAG_ID)
    cores = psutil.cpu_count()
    out(f"{requests} access requests ({succeeded} succeeded, {requests - succeeded} failed) in {wall:.1f} s "
        f"from the first trigger to the last run's end (triggering took {triggered:.1f} s)")
    out("task instances by worker: " + ", ".join(f"{k} {v}" for k, v in spread.items()))
    out(f"runs at once: at most {at_once} (the DAG allows {allowed})")
    out(f"machine: {cores} cores {100 * machine_busy / (wall * cores):.0f}% busy over the run, of which this "
        f"cluster {100 * sum(cpu.values()) / machine_busy:.0f}%; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} at the end")
    met = per_hour >= GOAL_PER_HOUR and succeeded == requests
    out(f"RESULT goal 8: {per_hour:,.0f} access requests an hour vs goal >= {GOAL_PER_HOUR:,}: "
        f"{per_hour / GOAL_PER_HOUR:.2f}x {verdict(met)}")
    heading("Goal 8 - where the time goes")
    _breakdown(cluster, runs, wall, cpu, allowed)
    _import_cost(cluster)
    return {"per_hour": per_hour, "met": met, "wall_s": wall, "requests": requests, "succeeded": succeeded,
            "spread": spread, "at_once": at_once}


def _import_cost(cluster: CeleryCluster) -> None:
    """CPU seconds a task process would spend importing the core its operator loads when it runs, had its
    worker not imported it before the fork (gdpr.celery_config)."""
    dag_file = PROJECT_ROOT / "dags" / f"{DAG_ID}.py"
    code = ("import resource, runpy, sys; import airflow.sdk.execution_time.task_runner; "
            f"runpy.run_path({str(dag_file)!r}); from gdpr.celery_config import CORE_MODULES; "
            "cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2]); before = cpu(); "
            "print('--core--', file=sys.stderr, flush=True); "
            "[__import__(m) for m in CORE_MODULES]; print(cpu() - before)")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=cluster.env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        out(f"core import cost: not measured ({done.stderr.strip().splitlines()[-1:]})")
        return
    by_package: Counter = Counter()
    for line in done.stderr.partition("--core--")[2].splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            self_us, _, name = line.removeprefix("import time:").split("|")
            if self_us.strip().isdigit():
                by_package[name.strip().split(".")[0]] += int(self_us) / 1e6
    out(f"each task process imports the core after the fork: {float(done.stdout.split()[-1]):.2f} CPU s ("
        + ", ".join(f"{k} {v:.2f} s" for k, v in by_package.most_common(4))
        + "); saved on each task by the workers' import at their start")


def _busy_seconds() -> float:
    """CPU seconds the machine's cores have been busy, whoever with."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq

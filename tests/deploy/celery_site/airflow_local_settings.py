"""Airflow's local settings for the Celery cluster of tests/deploy/test_celery.py alone (its PYTHONPATH
puts this folder first), never for a deployment:

- retries a second apart instead of the DAGs' minute, so that a run recovers from a lost worker in
  seconds (the heartbeat timeout is shortened by the cluster's configuration);
- the first try of the task named by CELERY_TEST_HOLD_TASK, in a run whose id starts with "hold-", waits
  CELERY_TEST_HOLD_S seconds before it starts its work, so that the test can kill its worker while it runs.

(Each worker's name as its task instances' hostname is the cluster's own: bench/cluster.py.)
"""

from __future__ import annotations

import os
import time
from datetime import timedelta


def task_policy(task) -> None:
    task.retry_delay = timedelta(seconds=1)
    task.retry_exponential_backoff = 0
    if task.task_id == os.environ.get("CELERY_TEST_HOLD_TASK"):
        task._pre_execute_hook = _hold_first_try


def _hold_first_try(context) -> None:
    if context["ti"].try_number == 1 and context["run_id"].startswith("hold-"):
        time.sleep(float(os.environ["CELERY_TEST_HOLD_S"]))

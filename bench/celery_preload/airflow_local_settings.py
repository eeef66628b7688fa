"""Airflow's local settings of goal 8's cluster with --celery-preload (bench/throughput.py puts this folder
first on every component's PYTHONPATH), never the shipped deployment's: the core that the request
operators import when a task runs, imported once by each component at its start. A Celery worker's task
processes are forks of its pool processes, so they find it loaded; without it, each task instance
imports it anew after the fork (pandas among it)."""

import importlib

# What gdpr.operators.requests and .dsar, and the pipeline's procedures, import when a task runs.
CORE_MODULES = ("include.requests.pipeline", "include.requests.access", "include.requests.rights",
                "include.requests.register", "include.requests.gather", "include.datamap.model",
                "include.vault.store")

for _name in CORE_MODULES:
    importlib.import_module(_name)

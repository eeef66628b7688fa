"""Celery's configuration for the workers of a scale-out (`[celery] celery_config_options`, set by
`make run-distributed` and docker-compose.yaml): Airflow's own, and Celery's `imports`, which each
worker imports once at its start, before it forks the processes that run tasks. Each task process
then finds the request workflows' core loaded, instead of importing it anew (about a second of CPU
a task on a small machine, where a request is a chain of five or six tasks)."""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

# What gdpr.operators.requests, .dsar and .rights, and the pipeline's procedures, import when a task runs;
# pandas (CSV files) and WeasyPrint (PDF files) are the slowest, a second or more each, which only the
# packaging task needs, so the core itself imports them only there. The holidays package loads its
# countries when a due date is first worked out.
CORE_MODULES = ("include.requests.pipeline", "include.requests.access", "include.requests.rights",
                "include.requests.register", "include.requests.gather", "include.datamap.model",
                "include.vault.store", "pandas", "weasyprint", "holidays.countries")

CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG, "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), *CORE_MODULES)}

"""What every DAG of the project shares."""

from datetime import datetime, timedelta, timezone

from airflow.sdk import Param

DEFAULT_ARGS = {
    "owner": "data-protection",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
}

# One run at a time, no catch-up of missed schedules (a backfill is asked for explicitly).
DAG_DEFAULTS = {
    "start_date": datetime(2026, 1, 1, tzinfo=timezone.utc),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
}


def dry_run_param() -> Param:
    return Param(False, type="boolean", title="Dry run", description="Report what would be deleted; delete nothing.")

"""What every DAG of the project shares."""

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "data-protection",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
}

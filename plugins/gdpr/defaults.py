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


# What a trigger form accepts as an email address (the core normalises and validates it again).
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"


def dry_run_param() -> Param:
    return Param(False, type="boolean", title="Dry run", description="Report what would be deleted; delete nothing.")


def configured_controllers() -> list[str]:
    """The controllers with an instruction file, for trigger forms' choices (a cheap read at parse
    time; the tasks validate the files in full)."""
    import os
    from pathlib import Path

    from include.errors import InvalidInput
    from include.paths import DEFAULT_INSTRUCTIONS_DIR
    from include.yamlfiles import read_yaml

    controllers = set()
    directory = Path(os.environ.get("GDPR_INSTRUCTIONS_DIR", DEFAULT_INSTRUCTIONS_DIR))  # as WorkflowSettings reads it
    for path in sorted(directory.glob("*.yaml")):
        try:
            content = read_yaml(path)
        except InvalidInput:
            continue
        if isinstance(content, dict) and isinstance(content.get("controller"), str):
            controllers.add(content["controller"])
    return sorted(controllers)


def registered_recipients() -> list[str]:
    """The recipients of the register, for trigger forms' choices (a cheap read at parse time; the
    tasks validate the register in full)."""
    import os
    from pathlib import Path

    from include.errors import InvalidInput
    from include.paths import DEFAULT_RECIPIENTS_FILE
    from include.yamlfiles import read_yaml

    path = Path(os.environ.get("GDPR_RECIPIENTS_FILE", DEFAULT_RECIPIENTS_FILE))  # as WorkflowSettings reads it
    try:
        content = read_yaml(path)
    except InvalidInput:
        return []
    recipients = content.get("recipients") if isinstance(content, dict) else None
    return sorted(r["id"] for r in recipients or [] if isinstance(r, dict) and isinstance(r.get("id"), str))

"""What every DAG of the project shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param

if TYPE_CHECKING:  # the cron timetables load croniter: only the DAGs that use them pay for it
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable

DEFAULT_ARGS = {
    "owner": "data-protection",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
}

# Request workflows' runs at once: each request is leased to one run (include/requests/register.py).
REQUEST_RUNS_AT_ONCE = 16

# One run at a time, no catch-up of missed schedules (a backfill is asked for explicitly).
DAG_DEFAULTS: dict[str, Any] = {  # DAG's keyword arguments
    "start_date": datetime(2026, 1, 1, tzinfo=UTC),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
}


def dag_defaults(doc: str | None, description: str, *tags: str, runs_at_once: int = 1) -> dict[str, Any]:
    """What a workflow's DAG takes besides its id, schedule and form: its page's text (the DAG file's
    docstring), the one plain line the DAG list shows under its id (description), its tags, and the
    defaults above; templates render as Python values (a number given in a form stays a number).
    runs_at_once: more than one where the workflow's core keeps two runs off the same data (the
    request workflows lease each request to one run)."""
    return {"doc_md": doc, "description": description, "tags": ["gdpr", *tags], "render_template_as_native_obj": True,
            **DAG_DEFAULTS, "max_active_runs": runs_at_once}


def intervals(cron: str) -> CronDataIntervalTimetable:
    """Runs that each cover the interval since the last (UTC); a backfill covers past intervals."""
    from airflow.sdk import CronDataIntervalTimetable

    return CronDataIntervalTimetable(cron, timezone="UTC")


def at_times(cron: str) -> CronTriggerTimetable:
    """Runs at these times (UTC), each acting as of when it runs."""
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(cron, timezone="UTC")


def batch_size_param(default: int, maximum: int, description: str) -> Param:
    return Param(default, type="integer", minimum=1, maximum=maximum, title="Batch size", description=description)


# What a trigger form accepts as an email address (the core normalises and validates it again).
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"


def controller_param(description: str, *, required: bool = False) -> Param:
    """The controller, chosen from those with an instruction file; optional unless required."""
    controllers = configured_controllers()
    if required:
        return Param(type="string", enum=controllers, title="Controller", description=description)
    return Param(None, type=["null", "string"], enum=[None, *controllers], title="Controller",
                 description=description)


def email_param(*, required: bool = False) -> Param:
    """The person's email address."""
    if required:
        return Param(type="string", format="email", pattern=EMAIL_PATTERN, maxLength=320,
                     title="The person's email address")
    return Param(None, type=["null", "string"], format="email", pattern=EMAIL_PATTERN, maxLength=320,
                 title="The person's email address")


def received_on_param() -> Param:
    return Param(None, type=["null", "string"], format="date", title="Received on",
                 description="The day the request arrived; empty for the run's date.")


def dry_run_param() -> Param:
    return Param(False, type="boolean", title="Dry run", description="Report what would be deleted; delete nothing.")


def configured_controllers() -> list[str]:
    """The controllers with an instruction file, for trigger forms' choices (a cheap read at parse
    time; the tasks validate the files in full)."""
    import os
    from pathlib import Path

    from include.common.errors import InvalidInput
    from include.common.paths import DEFAULT_INSTRUCTIONS_DIR
    from include.common.yamlfiles import read_yaml

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

    from include.common.errors import InvalidInput
    from include.common.paths import DEFAULT_RECIPIENTS_FILE
    from include.common.yamlfiles import read_yaml

    path = Path(os.environ.get("GDPR_RECIPIENTS_FILE", DEFAULT_RECIPIENTS_FILE))  # as WorkflowSettings reads it
    try:
        content = read_yaml(path)
    except InvalidInput:
        return []
    recipients = content.get("recipients") if isinstance(content, dict) else None
    return sorted(r["id"] for r in recipients or [] if isinstance(r, dict) and isinstance(r.get("id"), str))

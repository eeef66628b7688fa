"""What every DAG of the project shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param

if TYPE_CHECKING:  # the cron timetables load croniter: only the DAGs that use them pay for it
    from collections.abc import Iterable, Mapping

    from airflow.sdk import DAG, CronDataIntervalTimetable, CronTriggerTimetable

DEFAULT_ARGS = {
    "owner": "data-protection",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
}

# Request workflows' runs at once: each request is leased to one run (include/requests/register.py).
# Eight keep two cores busy (a run is a chain of one or two tasks at a time); more only add to what the
# scheduler checks on each of its loops.
REQUEST_RUNS_AT_ONCE = 8

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
EMAIL_EXPECTED = ("One address as the person gave it, such as jane.smith@example.com: no name, no spaces, no "
                  "second address.")


def choice_param(choices: Mapping[str, str], *, title: str, description: str, when_empty: str | None = None,
                 section: str | None = None) -> Param:
    """A drop-down of choices ({value: how the form shows it}). Without when_empty, required, with
    nothing chosen in advance. With when_empty, optional: the form shows when_empty while nothing is
    chosen (it would otherwise show a literal "null", and give an unlabelled choice the empty
    choice's label)."""
    grouped: dict[str, Any] = {"section": section} if section else {}
    if when_empty is None:
        return Param(type="string", enum=list(choices), values_display=dict(choices), title=title,
                     description=description, **grouped)
    return Param(None, type=["null", "string"], enum=[None, *choices], values_display={None: when_empty, **choices},
                 title=title, description=description, **grouped)


def controller_param(description: str, *, required: bool = False, when_empty: str = "(none)") -> Param:
    """The controller, chosen by name from those with an instruction file; optional unless required,
    shown as when_empty while none is chosen."""
    return choice_param(configured_controllers(), title="Controller", description=description,
                        when_empty=None if required else when_empty)


def email_param(*, required: bool = False) -> Param:
    """The person's email address."""
    if required:
        return Param(type="string", format="email", pattern=EMAIL_PATTERN, maxLength=320,
                     title="The person's email address", description=EMAIL_EXPECTED)
    return Param(None, type=["null", "string"], format="email", pattern=EMAIL_PATTERN, maxLength=320,
                 title="The person's email address", description=EMAIL_EXPECTED)


def received_on_param() -> Param:
    return Param(None, type=["null", "string"], format="date", title="Received on",
                 description="The day the request arrived; leave it empty for today.")


def form_fields(dag: DAG, names: Iterable[str]) -> str:
    """Fields of the DAG's trigger form as the form shows them ('Title', and its section where it has
    one), for a message that tells staff what to fill in."""
    shown = []
    for name in names:
        schema = dag.params.get_param(name).schema
        where = f" (section '{schema['section']}')" if schema.get("section") else ""
        shown.append(f"'{schema.get('title', name)}'{where}")
    return " and ".join(shown)


def dry_run_param() -> Param:
    return Param(False, type="boolean", title="Dry run", description="Report what would be deleted; delete nothing.")


def configured_controllers() -> dict[str, str]:
    """The controllers with an instruction file, as trigger forms show them ({id: legal name}, by id;
    a cheap read at parse time; the tasks validate the files in full)."""
    import os
    from pathlib import Path

    from include.common.errors import InvalidInput
    from include.common.paths import DEFAULT_INSTRUCTIONS_DIR
    from include.common.yamlfiles import read_yaml

    controllers = {}
    directory = Path(os.environ.get("GDPR_INSTRUCTIONS_DIR", DEFAULT_INSTRUCTIONS_DIR))  # as WorkflowSettings reads it
    for path in sorted(directory.glob("*.yaml")):
        try:
            content = read_yaml(path)
        except InvalidInput:
            continue
        if isinstance(content, dict) and isinstance(controller := content.get("controller"), str):
            name = content.get("name")
            controllers[controller] = name if isinstance(name, str) else controller
    return dict(sorted(controllers.items()))


def registered_recipients() -> dict[str, str]:
    """The recipients of the register, for trigger forms' choices ({id: name}; a cheap read at parse time; the
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
        return {}
    recipients = content.get("recipients") if isinstance(content, dict) else None
    return dict(sorted((r["id"], r["name"] if isinstance(r.get("name"), str) else r["id"])
                       for r in recipients or [] if isinstance(r, dict) and isinstance(r.get("id"), str)))

"""Keeps Airflow's own records free of personal data past their window."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context
from airflow.sdk.configuration import conf

from gdpr.operators.base import BaseVaultOperator
from include.errors import InvalidInput, VaultError

if TYPE_CHECKING:
    from include.vault.store import Vault

# The metadata tables that can hold what a form was given (a run's conf), what tasks returned, and
# what the UI and CLI logged; task instances and rendered fields go with their runs.
CLEANED_TABLES = ("dag_run", "task_instance", "task_instance_history", "xcom", "_xcom_archive", "log")


class MetadataHygieneOperator(BaseVaultOperator):
    """Removes, with Airflow's own `airflow db clean` and from the task-log folder, the runs (and their
    conf), XCom, task instances, UI/CLI log rows and task log files older than the window; audited.

    :param window_hours: how long Airflow may keep them (default 24).
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "window_hours")

    def __init__(self, *, window_hours: int | str = 24, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_hours = window_hours

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.files import remove_older_than

        try:
            hours = int(self.window_hours)
        except (TypeError, ValueError):
            raise InvalidInput(f"window_hours must be a whole number of hours, got {self.window_hours!r}") from None
        if hours < 0:
            raise InvalidInput(f"window_hours must not be negative, got {hours}")
        now = datetime.now(UTC)
        # Never this run itself: `db clean` cannot leave out a workflow's runs by dag id without failing
        # on the deadline table, so the cutoff stops a second before this run started.
        started = datetime.fromtimestamp((context["dag_run"].start_date or now).timestamp(), UTC)
        cutoff = min(now - timedelta(hours=hours), started - timedelta(seconds=1))
        cleaned = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "clean", "--clean-before-timestamp", cutoff.isoformat(),
             "--tables", ",".join(CLEANED_TABLES), "--skip-archive", "--error-on-cleanup-failure", "--yes"],
            capture_output=True, text=True, timeout=1800)
        if cleaned.returncode != 0:
            raise VaultError(f"airflow db clean failed ({cleaned.returncode}): {cleaned.stderr[-1500:]}")
        removed = remove_older_than(Path(conf.get("logging", "base_log_folder")), cutoff)
        with vault.engine.begin() as conn:
            vault.audit.append(conn, at=now, actor=self.actor, action="airflow.metadata_cleaned", details={
                "cutoff": cutoff.isoformat(timespec="seconds"), "tables": list(CLEANED_TABLES),
                "log_files_removed": removed})
        self.log.info("Airflow metadata older than %s cleaned (%s); %d task log file(s) removed",
                      cutoff.isoformat(timespec="seconds"), ", ".join(CLEANED_TABLES), removed)
        return {"cutoff": cutoff.isoformat(), "log_files_removed": removed}

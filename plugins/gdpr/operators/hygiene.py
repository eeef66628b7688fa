"""Keeps Airflow's own records free of personal data past their window."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, Context
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowNotFoundException

from gdpr.operators.base import BaseVaultOperator
from include.common.clock import utcnow
from include.common.errors import InvalidInput, VaultError

if TYPE_CHECKING:
    from include.vault.store import Vault

# The metadata tables that can hold what a form was given (a run's conf), what tasks returned, and
# what the UI and CLI logged; task instances and rendered fields go with their runs.
CLEANED_TABLES = ("dag_run", "task_instance", "task_instance_history", "xcom", "_xcom_archive", "log")


class MetadataHygieneOperator(BaseVaultOperator):
    """Removes, with Airflow's own `airflow db clean` and from the task-log folder, the runs (and their
    conf), XCom, task instances, UI/CLI log rows and task log files older than the window; audited.

    Airflow keeps tasks away from its metadata database; this one is given it on purpose, by the
    connection `metadata_conn_id` (extra `sqlalchemy_url`), and hands it to `airflow db clean` alone.

    :param window_hours: how long Airflow may keep them (default 24).
    :param metadata_conn_id: the connection to Airflow's metadata database.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "window_hours", "metadata_conn_id")

    def __init__(self, *, window_hours: int | str = 24, metadata_conn_id: str = "airflow_metadata",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_hours = window_hours
        self.metadata_conn_id = metadata_conn_id

    def metadata_url(self) -> str:
        try:
            url = BaseHook.get_connection(self.metadata_conn_id).extra_dejson.get("sqlalchemy_url")
        except AirflowNotFoundException:
            url = None
        if not url:
            raise InvalidInput(f"connection '{self.metadata_conn_id}' with extra sqlalchemy_url (Airflow's metadata "
                               "database) is needed: tasks cannot reach it otherwise")
        return url

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.common.files import remove_older_than

        try:
            hours = int(self.window_hours)
        except (TypeError, ValueError):
            raise InvalidInput(f"window_hours must be a whole number of hours, got {self.window_hours!r}") from None
        if hours < 0:
            raise InvalidInput(f"window_hours must not be negative, got {hours}")
        now = utcnow()
        # Never this run itself: `db clean` cannot leave out a workflow's runs by dag id without failing
        # on the deadline table, so the cutoff stops a second before this run started.
        started = datetime.fromtimestamp((context["dag_run"].start_date or now).timestamp(), UTC)
        cutoff = min(now - timedelta(hours=hours), started - timedelta(seconds=1))
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__SQL_ALCHEMY_CONN"))}
        cleaned = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "clean", "--clean-before-timestamp", cutoff.isoformat(),
             "--tables", ",".join(CLEANED_TABLES), "--skip-archive", "--error-on-cleanup-failure", "--yes"],
            env={**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url()},
            capture_output=True, text=True, timeout=1800)
        if cleaned.returncode != 0:
            raise VaultError(f"airflow db clean failed ({cleaned.returncode}): {cleaned.stderr[-1500:]}")
        removed = remove_older_than(Path(conf.get("logging", "base_log_folder")), cutoff)
        vault.record_event("airflow.metadata_cleaned", actor=self.actor, at=now, details={
            "cutoff": cutoff.isoformat(timespec="seconds"), "tables": list(CLEANED_TABLES),
            "log_files_removed": removed})
        self.log.info("Airflow metadata older than %s cleaned (%s); %d task log file(s) removed",
                      cutoff.isoformat(timespec="seconds"), ", ".join(CLEANED_TABLES), removed)
        return {"cutoff": cutoff.isoformat(), "log_files_removed": removed}

"""Operators of retention: controllers' instructions, the retention sweep, server logs, reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from gdpr.assets import RETENTION_REPORTS
from gdpr.operators.base import BaseVaultOperator, run_date
from include.common.clock import utcnow
from include.common.errors import InvalidInput

if TYPE_CHECKING:
    from include.vault.store import Vault


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false, got {value!r}")
    return value


def _check_whole(name: str, value: object) -> int:
    if not isinstance(value, int):
        raise InvalidInput(f"{name} must be a positive whole number, got {value!r}")
    return value


class InstructionsOperator(BaseVaultOperator):
    """Validates the controllers' instruction files (one bad file fails the task: the workflows act on
    all of them or none), registers new controllers or records a new name or region, records new
    instructions (the history is kept), and returns the ids of the controllers to work on.

    :param instructions_dir: the directory of YAML files; default GDPR_INSTRUCTIONS_DIR.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "instructions_dir")

    def __init__(self, *, instructions_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instructions_dir = instructions_dir

    def execute_on_vault(self, vault: Vault, context: Context) -> list[str]:
        from include.policies.instructions import load_instruction_dir
        from include.vault.instructions import record_instructions

        directory = Path(self.instructions_dir or self.workflow.instructions_dir)
        files = load_instruction_dir(directory)
        result = record_instructions(vault, files, actor=self.actor, at=utcnow())
        self.log.info("Instructions from %d file(s) in %s: %d controller(s) registered, %d changed; "
                      "%d instruction(s) newly recorded, %d already recorded", len(files), directory,
                      result.registered, result.changed, result.recorded, result.unchanged)
        return vault.controller_ids()


class RetentionSweepOperator(BaseVaultOperator):
    """Deletes one controller's records whose retention has ended, as of the run's date.

    :param controller_id: the controller (mapped over all of them in the DAG).
    :param dry_run: report what would be deleted, change nothing.
    :param batch_size: records per transaction.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "controller_id", "dry_run_only",
                                      "batch_size")

    def __init__(self, *, controller_id: str, dry_run: bool | str = False, batch_size: int | str = 1000,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller_id = controller_id
        self.dry_run_only = dry_run  # not self.dry_run: that is BaseOperator's method
        self.batch_size = batch_size

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.duties.retention import sweep_expired

        report = sweep_expired(vault, controller_id=self.controller_id, as_of=run_date(context),
                               actor=self.actor, batch_size=_check_whole("batch_size", self.batch_size),
                               dry_run=_check_flag("dry_run", self.dry_run_only))
        for outcome in report.outcomes:
            self.log.info("%s/%s under '%s': %s %d records, %d subjects' keys; kept %d by legal hold, "
                          "%d by open request", outcome.controller_id, outcome.category, outcome.rule,
                          "would delete" if report.dry_run else "deleted", outcome.deleted,
                          outcome.subjects_erased, outcome.kept_by_legal_hold, outcome.kept_by_open_request)
        if report.no_instruction:
            self.log.warning("Records with no instruction in effect (kept): %s", report.no_instruction)
        return report.summary()


class RetentionReportOperator(BaseVaultOperator):
    """Writes the run's report (what was, or would be, deleted, by controller and category; what is
    retained, with each rule, count, oldest record and next expiry) and emits it as an asset event.

    :param sweeps: the sweep tasks' summaries.
    :param reports_dir: where reports go; default GDPR_REPORTS_DIR.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "sweeps", "dry_run_only",
                                      "reports_dir")

    def __init__(self, *, sweeps: Any, dry_run: bool | str = False, reports_dir: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(outlets=[RETENTION_REPORTS], **kwargs)
        self.sweeps = sweeps
        self.dry_run_only = dry_run  # not self.dry_run: that is BaseOperator's method
        self.reports_dir = reports_dir

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.duties.retention import SweepReport, retention_report, write_retention_reports

        as_of = run_date(context)
        sweeps = [SweepReport.from_summary(summary) for summary in self.sweeps or []]
        directory = (Path(self.reports_dir or self.workflow.reports_dir) / context["dag"].dag_id
                     / as_of.strftime("%Y-%m-%dT%H%M%SZ"))
        paths = write_retention_reports(directory, as_of=as_of, dry_run=_check_flag("dry_run", self.dry_run_only),
                                        sweeps=sweeps, lines=retention_report(vault, as_of=as_of))
        deleted = sum(s.deleted for s in sweeps)
        context["outlet_events"][RETENTION_REPORTS].extra = {
            "as_of": as_of.isoformat(), "dry_run": self.dry_run_only, "deleted": deleted, "report": paths["html"]}
        self.log.info("Retention report written to %s (%d records %s)", directory, deleted,
                      "would be deleted" if self.dry_run_only else "deleted")
        return {"deleted": deleted, **paths}


class ServerLogRetentionOperator(BaseVaultOperator):
    """Anonymises or drops one controller's server-log lines older than its instruction allows.

    :param controller_id: the controller (mapped over all of them in the DAG).
    :param instructions_dir: where the log locations are configured; default GDPR_INSTRUCTIONS_DIR.
    :param log_root: the root of relative log directories; default GDPR_SERVER_LOG_ROOT.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "controller_id",
                                      "instructions_dir", "log_root")

    def __init__(self, *, controller_id: str, instructions_dir: str | None = None,
                 log_root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller_id = controller_id
        self.instructions_dir = instructions_dir
        self.log_root = log_root

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.duties.retention import sweep_server_logs
        from include.policies.instructions import load_instruction_dir

        settings = self.workflow
        files = load_instruction_dir(Path(self.instructions_dir or settings.instructions_dir))
        locations = [loc for f in files if f.content.controller == self.controller_id
                     for loc in f.content.server_logs]
        report = sweep_server_logs(vault, controller_id=self.controller_id, locations=locations,
                                   log_root=Path(self.log_root or settings.server_log_root),
                                   as_of=run_date(context), actor=self.actor)
        for location in report.locations:
            self.log.info("%s: %s lines before %s (%s): %d lines in %d of %d files", location["directory"],
                          report.action, report.cutoff, report.rule, location["lines_changed"],
                          location["files_rewritten"], location["files"])
        return report.summary()


class ShredClosedRequestsOperator(BaseVaultOperator):
    """Destroys the key of each request closed longer ago than the accountability period, as of the
    run's date: the identities it was made with, and its work files, can no longer be read; its record
    (dates, status, outcome) stays. Each request is audited (request.identities_shredded).

    :param months: the accountability period; default GDPR_REQUEST_ACCOUNTABILITY_MONTHS (12).
    :param dry_run: count what would go, change nothing.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "months", "dry_run_only")

    def __init__(self, *, months: int | str | None = None, dry_run: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.months = months
        self.dry_run_only = dry_run  # not self.dry_run: that is BaseOperator's method

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.requests.register import shred_closed_requests

        months = self.workflow.request_accountability_months if self.months in (None, "") else self.months
        try:
            months = int(months)
        except (TypeError, ValueError):
            raise InvalidInput(f"months must be a whole number of months, got {self.months!r}") from None
        report = shred_closed_requests(vault, as_of=run_date(context), months=months, actor=self.actor,
                                       dry_run=_check_flag("dry_run", self.dry_run_only))
        self.log.info("Requests closed by %s (%d months before the run): %s the identities of %d, %d key(s) "
                      "destroyed; %d kept by a legal hold", report.cutoff, months,
                      "would destroy" if report.dry_run else "destroyed", report.requests, report.keys_destroyed,
                      report.kept_by_legal_hold)
        return report.summary()

"""Operators of the immediate enquiry purge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from gdpr.assets import ENQUIRY_OUTCOMES
from gdpr.operators.base import BaseVaultOperator
from include.common.clock import utcnow
from include.common.errors import GdprError, InvalidInput

if TYPE_CHECKING:
    from include.vault.store import Vault


class ApplyEnquiryOutcomesOperator(BaseVaultOperator):
    """Records the outcomes carried by the asset events that triggered the run.

    Outside systems close enquiries by posting an ``enquiry_outcomes`` asset event with
    ``{"enquiry_id": ..., "outcome": ...}``; events the CLI posted are already recorded and apply
    again as no-ops. Valid events are applied even when others are bad; the bad ones then fail the
    task, each named by its time, and the purge still runs.
    """

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.duties.enquiries import check_enquiry_id, check_outcome, record_outcome

        events = context["triggering_asset_events"]
        applied, unchanged, rejected = 0, 0, []
        for event in events.get(ENQUIRY_OUTCOMES, []):
            where = f"asset event of {event.timestamp.isoformat()}"
            try:
                extra = event.extra or {}
                enquiry_id = check_enquiry_id(extra.get("enquiry_id"), f"{where}: extra.enquiry_id")
                outcome = check_outcome(extra.get("outcome"), f"{where}: extra.outcome")
                result = record_outcome(vault, enquiry_id, outcome, actor=self.actor, at=utcnow())
            except GdprError as exc:
                rejected.append(str(exc) if str(exc).startswith(where) else f"{where}: {exc}")
                continue
            applied += result.changed
            unchanged += not result.changed
        self.log.info("Enquiry outcomes: %d recorded, %d already recorded, %d rejected",
                      applied, unchanged, len(rejected))
        if rejected:
            raise InvalidInput("; ".join(rejected))
        return {"recorded": applied, "already_recorded": unchanged}


class EnquiryPurgeOperator(BaseVaultOperator):
    """Deletes closed prospects' enquiries and quotes and crypto-shreds emptied subjects.

    :param dry_run: report what would be deleted, change nothing.
    :param batch_size: enquiries per transaction.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "dry_run_only", "batch_size")

    def __init__(self, *, dry_run: bool | str = False, batch_size: int | str = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dry_run_only = dry_run  # not self.dry_run: that is BaseOperator's method
        self.batch_size = batch_size

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        if not isinstance(self.dry_run_only, bool):
            raise InvalidInput(f"dry_run must be true or false, got {self.dry_run_only!r}")
        if not isinstance(self.batch_size, int):  # as the purge says it, before it starts
            raise InvalidInput(f"batch_size must be a positive whole number, got {self.batch_size!r}")
        from include.duties.enquiries import purge_closed_enquiries

        report = purge_closed_enquiries(vault, now=utcnow(), actor=self.actor,
                                        batch_size=self.batch_size, dry_run=self.dry_run_only)
        self.log.info(
            "%s %d enquiries (%d records) in %d batches; %d subjects' data keys %s; "
            "held back: %d by legal hold, %d by open request",
            "Would purge" if report.dry_run else "Purged", report.enquiries, report.records,
            report.batches, report.subjects_erased, "would go" if report.dry_run else "destroyed",
            report.held_by_legal_hold, report.held_by_open_request)
        return report.summary()

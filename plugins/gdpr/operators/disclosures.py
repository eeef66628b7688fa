"""Operators of third-party disclosures and the processor's records (Art. 30(2)).

XCom carries disclosure ids, counts and paths; never a person's email.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context
from airflow.sdk.log import mask_secret

from gdpr.operators.base import BaseVaultOperator, run_date
from include.common.clock import utcnow
from include.common.errors import Restricted

if TYPE_CHECKING:
    from include.vault.store import Vault


class RecordDisclosureOperator(BaseVaultOperator):
    """Logs the one-off disclosure given in the trigger form (a court order, say), after the transfer
    guard and the other checks; a refusal is audited, reported to the controller, and fails the task
    with its reason. A run without a form (the daily one) has nothing to do here.
    """

    def execute_on_vault(self, vault: Vault, context: Context) -> dict | None:
        from include.duties.disclosures import Disclosure, Refusal, load_register, record_disclosure, report_refusals

        params = context["params"]
        if not params.get("email"):
            self.log.info("No disclosure in the form")
            return None
        mask_secret(params["email"])
        workflow = self.workflow
        run_id = context["dag_run"].run_id
        item = Disclosure(
            controller_id=params["controller"], recipient_id=params["recipient"], email=params["email"],
            categories=tuple(params.get("categories") or ()), legal_basis=params["legal_basis"],
            disclosed_on=(date.fromisoformat(params["disclosed_on"]) if params.get("disclosed_on")
                          else run_date(context).date()),
            reference=params.get("reference") or None, source=f"form:{run_id}"[:120])
        outcome = record_disclosure(vault, load_register(workflow.recipients_file).content, item, actor=self.actor,
                                    at=utcnow())
        if outcome.refusal:
            report_refusals(workflow.outbox_dir, [Refusal(f"form, run {run_id}", item.controller_id,
                                                          item.recipient_id, outcome.refusal)], at=utcnow(),
                            controllers=vault.controller_ids())
            raise Restricted(outcome.refusal)
        self.log.info("Disclosure %s to %s logged%s", outcome.disclosure_id, item.recipient_id,
                      "" if outcome.new else " before (this run had logged it)")
        return {"disclosure_id": outcome.disclosure_id, "new": outcome.new}


class IngestDisclosuresOperator(BaseVaultOperator):
    """Logs the routine disclosures of every CSV file in the inbox, once per file content; seals each
    file away afterwards; reports refused rows to their controllers."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.duties.disclosures import ingest_inbox, load_register, report_refusals

        workflow = self.workflow
        outcomes = ingest_inbox(vault, load_register(workflow.recipients_file).content, workflow.disclosures_inbox,
                                actor=self.actor, at=utcnow())
        refusals = [refusal for outcome in outcomes for refusal in outcome.refusals]
        reports = (report_refusals(workflow.outbox_dir, refusals, at=utcnow(),
                                   controllers=vault.controller_ids()) if refusals else [])
        for outcome in outcomes:
            self.log.info("%s: %d logged, %d logged before, %d refused", outcome.file, outcome.recorded,
                          outcome.already_logged, len(outcome.refusals))
        return {"files": len(outcomes), "recorded": sum(o.recorded for o in outcomes),
                "already_logged": sum(o.already_logged for o in outcomes), "refused": len(refusals),
                "reports": [str(path) for path in reports]}


class ProcessorRecordsOperator(BaseVaultOperator):
    """Writes the processor's records (Art. 30(2)) of each controller, or the one in the form, as of the
    last day of the run's month (a manual run: its day); disclosures are counted over that month.

    :param controller_id: one controller; default the form's, else every controller.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "controller_id")

    def __init__(self, *, controller_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller_id = controller_id

    def execute_on_vault(self, vault: Vault, context: Context) -> list[dict]:
        from include.duties.disclosures import load_register
        from include.duties.processing_records import processor_records, write_processor_records
        from include.policies.instructions import load_instruction_dir

        workflow = self.workflow
        register = load_register(workflow.recipients_file).content
        instructions = load_instruction_dir(workflow.instructions_dir)
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        period_start: date  # pendulum's Date from the interval, else datetime's
        as_of: date
        if start and end and end > start:  # the month the run covers
            period_start, as_of = start.date(), (end - timedelta(days=1)).date()
        else:
            as_of = run_date(context).date()
            period_start = as_of - timedelta(days=31)
        wanted = self.controller_id or context["params"].get("controller")
        written = []
        for controller_id in [wanted] if wanted else vault.controller_ids():
            records = processor_records(vault, register, instructions, controller_id=controller_id,
                                        period_start=period_start, as_of=as_of)
            paths = write_processor_records(workflow.reports_dir / "processor-records", records)
            self.log.info("Records of %s: %s", controller_id, paths["html"])
            written.append({"controller": controller_id, **paths})
        return written

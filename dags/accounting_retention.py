"""
### Retention: accounting records and every other scheduled rule

The privacy notice: client data kept for the tax authorities is held 7 years and then deleted, and
everything else only as long as each client's (controller's) instructions say. Each day this DAG
records any new instructions, then for each controller deletes, in batches, the records whose rule
has run out on the run's date, crypto-shredding every data subject left with no records, and writes
a report of what was deleted and what is retained (rule, count, oldest record, next expiry).

**Kept regardless**: records under a legal hold (Art. 17(3)(e)), data of a subject with an open
request (DPA 2018 s.173). **Backfill**: a run for a past day applies the instructions of that day.

**Requests**: the task `shred_closed_requests` destroys the key of every rights request closed
longer ago than the accountability period (`GDPR_REQUEST_ACCOUNTABILITY_MONTHS`, default 12): the
identities it was made with can no longer be read; the request's record stays.

**Params**: `dry_run` reports what would go and deletes nothing; `batch_size` records per transaction.
"""

from __future__ import annotations

from airflow.sdk import DAG

from gdpr.defaults import at_times, batch_size_param, dag_defaults, dry_run_param
from gdpr.operators.audit import VerifyAuditLogOperator
from gdpr.operators.retention import (
    InstructionsOperator,
    RetentionReportOperator,
    RetentionSweepOperator,
    ShredClosedRequestsOperator,
)

DESCRIPTION = "Deletes records whose retention period has ended (accounting records after 7 years), daily."

with DAG("accounting_retention", schedule=at_times("30 2 * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "retention"), params={
    "dry_run": dry_run_param(),
    "batch_size": batch_size_param(1000, 50_000, "Records deleted per transaction."),
}) as dag:
    controllers = InstructionsOperator(task_id="record_instructions")
    sweep = RetentionSweepOperator.partial(
        task_id="delete_expired_records",
        dry_run="{{ params.dry_run }}",
        batch_size="{{ params.batch_size }}",
        map_index_template="{{ task.controller_id }}",
    ).expand(controller_id=controllers.output)
    report = RetentionReportOperator(
        task_id="write_retention_report",
        sweeps="{{ ti.xcom_pull(task_ids='delete_expired_records') }}",
        dry_run="{{ params.dry_run }}",
    )
    shred = ShredClosedRequestsOperator(task_id="shred_closed_requests", dry_run="{{ params.dry_run }}")
    verify = VerifyAuditLogOperator(task_id="verify_audit_log")

    controllers >> sweep >> report >> verify
    shred >> verify

"""
### Immediate enquiry purge

The privacy notice: prospects who do not become clients, and quotes that are not accepted, have
their data deleted after the enquiry is answered. This DAG deletes closed prospects' enquiries and
quotes and destroys the data keys of prospects left with nothing, which puts every copy beyond use.

**When**: within minutes of an enquiry closing (an `enquiry_outcomes` asset event, from
`gdpr-admin enquiry outcome` or an outside system via the REST API), and hourly as a safety net.

**Never touched**: clients' data, data under a legal hold, data under an open rights request.

**Params**: `dry_run` reports what would go and changes nothing; `batch_size` enquiries per
transaction.
"""

from __future__ import annotations

from airflow.sdk import DAG, AssetOrTimeSchedule, TriggerRule

from gdpr.assets import ENQUIRY_OUTCOMES
from gdpr.defaults import at_times, batch_size_param, dag_defaults, dry_run_param
from gdpr.operators.audit import VerifyAuditLogOperator
from gdpr.operators.enquiries import ApplyEnquiryOutcomesOperator, EnquiryPurgeOperator

# Hourly, and at once when an outside system records enquiry outcomes.
HOURLY_OR_ON_OUTCOMES = AssetOrTimeSchedule(timetable=at_times("0 * * * *"), assets=[ENQUIRY_OUTCOMES])

DESCRIPTION = "Deletes prospects' enquiries and quotes once answered or declined, hourly and on each outcome."

with DAG("enquiry_purge", schedule=HOURLY_OR_ON_OUTCOMES,
         **dag_defaults(__doc__, DESCRIPTION, "retention", "enquiries"), params={
    "dry_run": dry_run_param(),
    "batch_size": batch_size_param(500, 10_000, "Enquiries deleted per transaction."),
}) as dag:
    apply_outcomes = ApplyEnquiryOutcomesOperator(task_id="apply_enquiry_outcomes")
    purge = EnquiryPurgeOperator(
        task_id="purge_closed_enquiries",
        dry_run="{{ params.dry_run }}",
        batch_size="{{ params.batch_size }}",
        # Bad events from outside systems must not hold back the purge of everything else.
        trigger_rule=TriggerRule.ALL_DONE,
    )
    verify = VerifyAuditLogOperator(task_id="verify_audit_log")

    apply_outcomes >> purge >> verify

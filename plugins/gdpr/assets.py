"""Assets that wake workflows. Their URIs are shared with the core's REST client."""

from airflow.sdk import Asset

from include.admin.airflow_api import ENQUIRY_OUTCOMES_URI

# An event per closed enquiry; extra: {"enquiry_id": <opaque id>, "outcome": answered|declined|converted}.
ENQUIRY_OUTCOMES = Asset(name="enquiry_outcomes", uri=ENQUIRY_OUTCOMES_URI, group="gdpr")

# An event per accounting_retention run; extra: the report's paths and the counts deleted.
RETENTION_REPORTS = Asset(name="retention_reports", uri="file://gdpr/reports/retention", group="gdpr")

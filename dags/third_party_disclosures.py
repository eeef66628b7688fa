"""
### Third-party disclosures: log them, guard transfers, keep them provable

**From the form**, a one-off disclosure such as a court order: the controller, the person's email,
the recipient (from the register of recipients, `include/config/recipients.yaml`), the data
categories, the legal basis, the order's reference and the day. It is logged only if the recipient
is registered for those categories, the controller's instructions cover them, the person's data is
not restricted, and, for a recipient outside the UK and the EEA, an adequacy decision or safeguard
is recorded. A refusal is audited, reported to the controller's outbox, and fails the run with its
reason.

**Daily**, the CSV files of routine disclosures that other systems drop in the inbox
(`GDPR_DISCLOSURES_INBOX`, columns controller, recipient, email, categories, legal_basis,
disclosed_on, optionally reference) are logged, a file's rows once however often it is dropped;
each file is then sealed away and its plain copy removed. Refused rows are reported.

First of all the audit chain, and every logged disclosure against its audit event, are verified:
nothing is added to a log that does not verify. Access packages and erasure confirmations take
their recipients from this log.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from gdpr.defaults import (
    choice_param,
    controller_param,
    dag_defaults,
    email_param,
    intervals,
    registered_recipients,
)
from gdpr.operators.audit import VerifyAuditLogOperator
from gdpr.operators.disclosures import IngestDisclosuresOperator, RecordDisclosureOperator

DESCRIPTION = "Logs disclosures to third parties and refuses transfers without a safeguard, daily."

with DAG("third_party_disclosures", schedule=intervals("30 0 * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "disclosures"), params={
    "controller": controller_param("Whose data is disclosed."),
    "email": email_param(),
    "recipient": choice_param(registered_recipients(), title="Recipient", when_empty="(none)",
                              description="Who the data was disclosed to, from the register of recipients."),
    "categories": Param([], type="array", items={"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,31}$"},
                        title="Data categories disclosed", description="One per line, e.g. client, invoice."),
    "legal_basis": Param("legal_obligation", type="string", title="Legal basis (Art. 6(1))",
                         enum=["consent", "contract", "legal_obligation", "vital_interests", "public_task",
                               "legitimate_interests"]),
    "reference": Param(None, type=["null", "string"], pattern=r"^[A-Za-z0-9_.:/+-]{1,64}$",
                       title="Court order or other reference"),
    "disclosed_on": Param(None, type=["null", "string"], format="date", title="Disclosed on",
                          description="Empty for the run's date."),
}) as dag:
    verify = VerifyAuditLogOperator(task_id="verify_audit_and_disclosure_logs")
    form = RecordDisclosureOperator(task_id="record_form_disclosure")  # reads the form's params
    batches = IngestDisclosuresOperator(task_id="ingest_disclosure_files")

    verify >> [form, batches]

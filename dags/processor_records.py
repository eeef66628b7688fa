"""
### The processor's records of processing (Art. 30(2))

Monthly, and on demand from the form: per controller, the processor and the controller with their
contacts, the categories of processing from the controller's instructions in effect, the recipients
and what they receive, transfers outside the UK and the EEA with their safeguards, the month's
disclosures and refusals, and the security measures. Written as HTML, CSV and JSON to
`var/reports/processor-records/<controller>/`.
"""

from __future__ import annotations

from airflow.sdk import DAG

from gdpr.defaults import controller_param, dag_defaults, intervals
from gdpr.operators.disclosures import ProcessorRecordsOperator

DESCRIPTION = "Writes each controller's records of processing (Art. 30(2)), monthly."

with DAG("processor_records", schedule=intervals("0 4 1 * *"),
         **dag_defaults(__doc__, DESCRIPTION, "disclosures", "reports"), params={
    "controller": controller_param("Empty for every controller."),
}) as dag:
    ProcessorRecordsOperator(task_id="write_processor_records")

"""
### The processor's records of processing (Art. 30(2))

Monthly, and on demand from the form: per controller, the processor and the controller with their
contacts, the categories of processing from the controller's instructions in effect, the recipients
and what they receive, transfers outside the UK and the EEA with their safeguards, the month's
disclosures and refusals, and the security measures. Written as HTML, CSV and JSON to
`var/reports/processor-records/<controller>/`.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from gdpr.defaults import DAG_DEFAULTS, configured_controllers
from gdpr.operators.disclosures import ProcessorRecordsOperator

with DAG(
    dag_id="processor_records",
    schedule=CronDataIntervalTimetable("0 4 1 * *", timezone="UTC"),
    **DAG_DEFAULTS,
    tags=["gdpr", "disclosures", "reports"],
    doc_md=__doc__,
    params={
        "controller": Param(None, type=["null", "string"], enum=[None, *configured_controllers()],
                            title="Controller", description="Empty for every controller."),
    },
) as dag:
    ProcessorRecordsOperator(task_id="write_processor_records")

"""
### Airflow's own records: no personal data past the window

A trigger form puts a person's email into its run's `conf`, which Airflow stores in plain text. The
workflows never put personal data into XCom, rendered fields or task logs (identities are masked,
and only opaque ids, counts and paths are returned), but the conf is there by design. Hourly, this
removes the runs (with their conf), XCom, task instances, UI and CLI log rows, and task log files
older than the window (default 24 hours), with Airflow's own `airflow db clean` and from the
task-log folder. Each cleaning is audited.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from gdpr.defaults import dag_defaults, intervals
from gdpr.operators.hygiene import MetadataHygieneOperator

DESCRIPTION = "Removes people's details from Airflow's own records after 24 hours, hourly."

with DAG("airflow_metadata_hygiene", schedule=intervals("15 * * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "hygiene"), params={
    "window_hours": Param(24, type="integer", minimum=0, maximum=24 * 30, title="Window (hours)",
                          description="How long Airflow may keep run conf, XCom and task logs."),
}) as dag:
    MetadataHygieneOperator(task_id="clean_airflow_metadata", window_hours="{{ params.window_hours }}")

"""
### Key rotation: erased keys beyond recovery everywhere within 7 days

Erasing a person destroys their data key in the key store, but a deleted row can linger where no
DELETE reaches: free space in a table file, MariaDB's redo log, PostgreSQL's write-ahead log, a
backup. Each data key is wrapped under the key-encryption key (KEK) active when it was made. Weekly,
this makes a new KEK active, rewraps every live data key and every sealed file (packages, mailing
lists, processed disclosure batches) under it, and destroys the retired KEKs that nothing live is
wrapped under any more: every lingering copy of an erased key is then wrapped under a destroyed KEK.
Safe while other workflows run; a run stopped halfway is finished by the next. Audited.
"""

from __future__ import annotations

from airflow.sdk import DAG

from gdpr.defaults import dag_defaults, intervals
from gdpr.operators.keys import RotateKekOperator

DESCRIPTION = "Rotates the key-encryption key weekly, so that erased people's keys are beyond recovery."

with DAG("kek_rotation", schedule=intervals("30 3 * * 0"), **dag_defaults(__doc__, DESCRIPTION, "keys")) as dag:
    RotateKekOperator(task_id="rotate_kek_and_destroy_retired_keks")

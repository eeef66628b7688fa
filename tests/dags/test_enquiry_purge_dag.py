"""`enquiry_purge` run end to end through Airflow (dag.test) on the demo data, vault on each backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gdpr.operators.enquiries import ApplyEnquiryOutcomesOperator
from include.common.errors import DataKeyDestroyed, InvalidInput
from include.common.settings import VaultSettings
from include.demo.people import demo_people
from include.vault.store import Vault
from tests.dags.conftest import metadata_engine, task_states, xcom_value
from tests.helpers import copy_vault_database, subjects_by_fate


def run(dagbag, **conf):
    # dag.test keeps the previous run's conf in the DAG's params: pass every param each time.
    dag_run = dagbag.get_dag("enquiry_purge").test(run_conf={"dry_run": False, "batch_size": 500, **conf})
    assert dag_run.state == "success", f"enquiry_purge ended {dag_run.state}"
    return xcom_value(dag_run.run_id, "enquiry_purge", "purge_closed_enquiries")


@pytest.mark.airflow
def test_enquiry_purge_end_to_end(dagbag, demo_vault, vault_connection, store_urls):
    subjects = subjects_by_fate(demo_vault)
    records = {p: demo_vault.subject_record_ids(s) for p, s in subjects.items()}
    copy_vault_database(demo_vault, store_urls["copy"])
    demo_vault.dispose()

    dry = run(dagbag, dry_run=True)
    assert (dry["dry_run"], dry["enquiries"], dry["records"], dry["subjects_erased"]) == (True, 20, 28, 20)
    with Vault.open(vault_connection) as vault:
        assert vault.counts() == {"records": 196, "live_subjects": 72, "data_keys": 72}

    done = run(dagbag, batch_size=6)
    assert (done["enquiries"], done["records"], done["subjects_erased"], done["batches"]) == (20, 28, 20, 4)
    assert (done["held_by_legal_hold"], done["held_by_open_request"]) == (4, 4)
    purged = {p for p in subjects if p.purged}
    assert set(done["erased_subject_ids"]) == {subjects[p] for p in purged}

    with Vault.open(vault_connection) as vault:
        for person, subject in subjects.items():
            if person.purged:
                assert vault.subject_record_ids(subject) == []
                assert vault.keystore.fetch([subject]) == {}
                assert vault.find_subjects(person.controller_id, "email", person.email) == []
            else:
                views = vault.read_records(records[person])
                assert len(views) == len(records[person]) > 0
        with vault.engine.connect() as conn:
            assert vault.audit.verify(conn).ok

    again = run(dagbag)
    assert (again["enquiries"], again["records"], again["subjects_erased"]) == (0, 0, 0)

    before_purge = VaultSettings(vault_url=store_urls["copy"], keystore_url=vault_connection.keystore_url,
                                 keyring_path=vault_connection.keyring_path)
    with Vault.open(before_purge) as copy:
        for person in purged:
            with pytest.raises(DataKeyDestroyed):
                copy.read_records(records[person])


@pytest.mark.airflow
def test_no_personal_data_reaches_airflow_metadata(dagbag, demo_vault, vault_connection):
    demo_vault.dispose()
    run(dagbag)
    engine = metadata_engine()
    with engine.connect() as conn:
        stored = "\n".join(
            str(row) for table in ("xcom", "dag_run", "rendered_task_instance_fields", "log")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")))
    engine.dispose()
    assert "enquiry_purge" in stored  # the scan does see this DAG's rows
    for person in demo_people():
        for value in (person.email, person.name, person.phone):
            assert value not in stored, f"a {person.role}'s value reached Airflow's metadata"


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_purge_runs_after_a_failed_outcome_task(dagbag, demo_vault, vault_connection, monkeypatch):
    demo_vault.dispose()

    def bad_events(self, vault, context):
        raise InvalidInput("asset event 1: enquiry id 'nope' is not a 32-character hex id")
    monkeypatch.setattr(ApplyEnquiryOutcomesOperator, "execute_on_vault", bad_events)
    dag = dagbag.get_dag("enquiry_purge")
    for task in dag.tasks:  # the real DAG retries; one failure is enough to see
        monkeypatch.setattr(task, "retries", 0)  # undone after the test: the DagBag is the session's
    dag_run = dag.test(run_conf={"dry_run": False, "batch_size": 500})
    states = task_states(dag_run.run_id)
    assert states[("apply_enquiry_outcomes", -1)] == "failed"
    assert states[("purge_closed_enquiries", -1)] == states[("verify_audit_log", -1)] == "success"
    purged = xcom_value(dag_run.run_id, "enquiry_purge", "purge_closed_enquiries")
    assert (purged["enquiries"], purged["subjects_erased"]) == (20, 20)

"""`third_party_disclosures` and `processor_records` end to end through Airflow (dag.test): a court
order from the form reaches the person's next access package; a batch file dropped twice is logged
once; a transfer without a safeguard is refused with its reason; the records are written."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from include.crypto.sealing import open_sealed
from include.demo.shop import SHOP_CONTROLLER
from include.requests.register import get_request, requests_received
from include.vault.schema import audit_event, disclosure
from include.vault.store import Vault
from tests.dags.conftest import ACCESS_FORM, assert_cleaned_after_the_window, task_states
from tests.helpers import client_in_both

RUN_DAY = datetime(2026, 11, 24, 10, tzinfo=UTC)
FORM = {"controller": None, "email": None, "recipient": None, "categories": [], "legal_basis": "legal_obligation",
        "reference": None, "disclosed_on": None}


@pytest.fixture(scope="module", autouse=True)
def cleaned_after_the_window(tmp_path_factory):
    yield
    assert_cleaned_after_the_window(client_in_both(), tmp_path_factory.mktemp("hygiene"))


def disclose(dagbag, hour: int, **conf):
    return dagbag.get_dag("third_party_disclosures").test(logical_date=RUN_DAY.replace(hour=hour),
                                                           run_conf={**FORM, **conf})


def logged(settings) -> list[dict]:
    with Vault.open(settings) as vault, vault.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(disclosure).order_by(disclosure.c.source)).mappings()]


@pytest.mark.airflow
def test_a_court_order_from_the_form_is_in_the_persons_next_access_package(dagbag, shop_world, tmp_path):
    email = client_in_both()
    run = disclose(dagbag, 9, controller=SHOP_CONTROLLER, email=email, recipient="hmcts",
                   categories=["client", "invoice"], reference="CO/2026/0417", disclosed_on="2026-11-20")
    assert run.state == "success", task_states(run.run_id)
    [row] = logged(shop_world)
    assert (row["recipient_id"], row["reference"], row["disclosed_on"]) == ("hmcts", "CO/2026/0417", date(2026, 11, 20))

    access = dagbag.get_dag("dsar_fulfilment").test(logical_date=RUN_DAY, run_conf={
        **ACCESS_FORM, "controller": SHOP_CONTROLLER, "email": email})
    assert access.state == "success", task_states(access.run_id)
    with Vault.open(shop_world) as vault:
        (request_id,) = requests_received(vault, date(2026, 11, 24), date(2026, 11, 25), open_only=False)
        files = open_sealed((tmp_path / "outbox" / get_request(vault, request_id).package).read_bytes(),
                            keyring=vault.keyring)
    [told] = json.loads(files["data/disclosures.json"])
    assert (told["recipient"], told["reference"], told["disclosed_on"]) == (
        "HM Courts & Tribunals Service (courts of England and Wales)", "CO/2026/0417", "2026-11-20")


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_batch_file_twice_is_one_set_and_a_transfer_without_safeguard_is_refused(dagbag, shop_world, tmp_path,
                                                                                    capfd):
    inbox = tmp_path / "inbox"  # shop_world's
    inbox.mkdir()
    batch = ("controller,recipient,email,categories,legal_basis,disclosed_on\n"
             f"{SHOP_CONTROLLER},xero,{client_in_both()},client;invoice,contract,2026-11-23\n"
             f"{SHOP_CONTROLLER},microsoft-365,{client_in_both()},contact,contract,2026-11-23\n")
    (inbox / "from-accounts.csv").write_text(batch)
    first = disclose(dagbag, 1)
    (inbox / "from-accounts-again.csv").write_text(batch)
    second = disclose(dagbag, 2)
    assert first.state == second.state == "success", task_states(second.run_id)
    assert sorted(r["recipient_id"] for r in logged(shop_world)) == ["microsoft-365", "xero"]
    assert not list(inbox.glob("*.csv")) and len(list((inbox / "processed").glob("*.gdprpkg"))) == 2

    refused = disclose(dagbag, 3, controller="jigowatt", email="someone@example.org", recipient="trellis-crm",
                       categories=["contact"], legal_basis="legitimate_interests")
    assert refused.state == "failed"
    assert task_states(refused.run_id)[("record_form_disclosure", -1)] == "failed"
    assert task_states(refused.run_id)[("verify_audit_and_disclosure_logs", -1)] == "success"
    printed = capfd.readouterr()
    assert "transfer refused: Trellis CRM Inc. is in US, outside the UK and the EEA" in printed.out + printed.err
    [report] = (tmp_path / "outbox" / "jigowatt").glob("disclosure-refusals-*.json")
    assert json.loads(report.read_text())[0]["recipient_id"] == "trellis-crm"
    assert len(logged(shop_world)) == 2

    # The monthly run of 1 December covers November.
    records = dagbag.get_dag("processor_records").test(logical_date=datetime(2026, 12, 1, 4, tzinfo=UTC),
                                                       run_conf={"controller": SHOP_CONTROLLER})
    assert records.state == "success", task_states(records.run_id)
    [written] = (tmp_path / "reports" / "processor-records" / SHOP_CONTROLLER).glob("records-*.csv")
    rows = list(csv.DictReader(written.open()))
    assert {r["name"]: r["disclosures"] for r in rows if r["section"] == "recipient"}["Xero (UK) Ltd"] == "1"


@pytest.mark.airflow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_broken_audit_chain_stops_the_disclosures_run_before_anything_is_logged(dagbag, shop_world, tmp_path,
                                                                                  monkeypatch):
    with Vault.open(shop_world) as vault, vault.engine.begin() as conn:
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 2).values(actor="someone-else"))
    inbox = tmp_path / "inbox"  # shop_world's
    inbox.mkdir()
    (inbox / "from-accounts.csv").write_text("controller,recipient,email,categories,legal_basis,disclosed_on\n"
                                             f"{SHOP_CONTROLLER},xero,{client_in_both()},client,contract,2026-11-23\n")
    dag = dagbag.get_dag("third_party_disclosures")
    for task in dag.tasks:  # the real DAG retries; one failed verification is enough to see
        monkeypatch.setattr(task, "retries", 0)  # undone after the test: the DagBag is the session's
    run = disclose(dagbag, 4, controller=SHOP_CONTROLLER, email=client_in_both(), recipient="hmcts",
                   categories=["client"], reference="CO/2026/0999", disclosed_on="2026-11-20")
    assert run.state == "failed"
    states = task_states(run.run_id)
    assert states[("verify_audit_and_disclosure_logs", -1)] == "failed"
    assert states[("record_form_disclosure", -1)] == states[("ingest_disclosure_files", -1)] == "upstream_failed"
    assert logged(shop_world) == [] and (inbox / "from-accounts.csv").exists()

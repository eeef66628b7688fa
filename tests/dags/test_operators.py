"""The operators against a real vault, with the context Airflow would give them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

from gdpr.assets import ENQUIRY_OUTCOMES
from gdpr.hooks.vault import VaultHook
from gdpr.operators.enquiries import ApplyEnquiryOutcomesOperator, EnquiryPurgeOperator
from include.common.errors import InvalidInput
from include.vault.store import NewRecord
from tests.helpers import instruct


@pytest.fixture
def connected_vault(vault, vault_settings, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GDPR_VAULT_DEFAULT", json.dumps({
        "conn_type": "gdpr-vault",
        "extra": {"database_url": vault_settings.vault_url, "keystore_url": vault_settings.keystore_url,
                  "keyring_path": str(vault_settings.keyring_path)}}))
    vault.add_controller("acme", "Acme", "england-and-wales", actor="test")
    instruct(vault, "acme")
    return vault


def events(*extras):
    """What the task SDK hands a task run by asset events, built with its own model."""
    return {"triggering_asset_events": {ENQUIRY_OUTCOMES: [
        AssetEventDagRunReferenceResult(
            asset={"name": ENQUIRY_OUTCOMES.name, "uri": ENQUIRY_OUTCOMES.uri, "extra": {}},
            extra={**extra, "from_rest_api": True}, source_task_id=None, source_dag_id=None,
            source_run_id=None, source_map_index=None, source_aliases=[],
            timestamp=datetime(2026, 11, 24, 10, i, tzinfo=UTC))
        for i, extra in enumerate(extras)]}}


def test_asset_events_from_outside_systems_close_enquiries(connected_vault):
    first, second = connected_vault.add_records(
        [NewRecord("acme", "enquiry", "p", "web", {"email": f"{n}@example.com"}) for n in "ab"], actor="t")
    operator = ApplyEnquiryOutcomesOperator(task_id="apply")
    with operator.hook.get_conn() as vault:
        result = operator.execute_on_vault(vault, events(
            {"enquiry_id": first, "outcome": "answered"}, {"enquiry_id": second, "outcome": "declined"},
            {"enquiry_id": first, "outcome": "answered"}))
    assert result == {"recorded": 2, "already_recorded": 1}
    assert [v.outcome for v in connected_vault.read_records([first, second])] == ["answered", "declined"]


def test_bad_events_are_named_and_good_ones_still_applied(connected_vault):
    (good,) = connected_vault.add_records(
        [NewRecord("acme", "enquiry", "p", "web", {"email": "a@example.com"})], actor="t")
    operator = ApplyEnquiryOutcomesOperator(task_id="apply")
    with operator.hook.get_conn() as vault, pytest.raises(InvalidInput) as caught:
        operator.execute_on_vault(vault, events(
            {"enquiry_id": "nope", "outcome": "answered"}, {"enquiry_id": good, "outcome": "answered"},
            {"enquiry_id": "a" * 32, "outcome": "answered"}, {"enquiry_id": good, "outcome": "sold"}))
    message = str(caught.value)
    assert "asset event of 2026-11-24T10:00:00+00:00: extra.enquiry_id must be a 32-character" in message
    assert f"asset event of 2026-11-24T10:02:00+00:00: enquiry {'a' * 32} does not exist" in message
    assert "asset event of 2026-11-24T10:03:00+00:00: extra.outcome must be one of" in message
    assert connected_vault.read_record(good).outcome == "answered"


def test_no_events_means_nothing_to_record(connected_vault):
    operator = ApplyEnquiryOutcomesOperator(task_id="apply")
    with operator.hook.get_conn() as vault:
        assert operator.execute_on_vault(vault, {"triggering_asset_events": {}}) == \
            {"recorded": 0, "already_recorded": 0}


def test_purge_operator_refuses_a_dry_run_that_is_not_a_boolean(connected_vault):
    operator = EnquiryPurgeOperator(task_id="purge", dry_run="yes")
    with operator.hook.get_conn() as vault, pytest.raises(InvalidInput, match="dry_run must be true or false"):
        operator.execute_on_vault(vault, {})


def test_hook_without_database_url_says_so(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps({"conn_type": "gdpr-vault", "extra": {}}))
    with pytest.raises(InvalidInput, match="connection 'broken': extra 'database_url' is missing"):
        VaultHook("broken").settings()


def test_hook_reads_the_keyring_from_the_connection_secret(vault_settings, vault, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SECRET_RING", json.dumps({
        "conn_type": "gdpr-vault", "password": vault_settings.keyring_path.read_text(),
        "extra": {"database_url": vault_settings.vault_url, "keystore_url": vault_settings.keystore_url}}))
    ok, message = VaultHook("secret_ring").test_connection()
    assert ok, message

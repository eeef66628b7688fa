"""Retry or fail, decided by the error: a task whose answer would be the same on every try fails at
once (AirflowFailException: Airflow does not retry it); a store that is away is retried."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from gdpr.defaults import DEFAULT_ARGS
from gdpr.operators.audit import VerifyAuditLogOperator
from gdpr.operators.requests import PlanRequestsOperator, StoreStepOperator
from include.common.errors import StoreUnavailable
from include.crypto.keyring import create_keyring
from include.requests.register import register_request
from include.vault.schema import audit_event
from include.vault.store import NewRecord
from tests.helpers import instruct

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
DOWN = "postgresql+psycopg2://postgres@127.0.0.1:1/none?connect_timeout=2"


def connect(monkeypatch, vault_settings, *, keyring_path=None) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GDPR_VAULT_DEFAULT", json.dumps({
        "conn_type": "gdpr-vault",
        "extra": {"database_url": vault_settings.vault_url, "keystore_url": vault_settings.keystore_url,
                  "keyring_path": str(keyring_path or vault_settings.keyring_path)}}))


def test_the_workflows_retry_what_may_pass_later():
    assert DEFAULT_ARGS["retries"] >= 1


def test_a_wrong_keyring_fails_the_task_at_once(vault, vault_settings, monkeypatch, tmp_path):
    other = tmp_path / "other" / "keyring.json"
    create_keyring(other)
    connect(monkeypatch, vault_settings, keyring_path=other)
    with pytest.raises(AirflowFailException, match="keyring"):
        VerifyAuditLogOperator(task_id="verify").execute({})


def test_a_broken_audit_chain_fails_the_task_at_once(vault, vault_settings, monkeypatch):
    vault.add_controller("acme", "Acme", "england-and-wales", actor="test")
    instruct(vault, "acme")
    vault.add_records([NewRecord("acme", "enquiry", "p", "web", {"email": "a@example.com"})], actor="t")
    with vault.engine.begin() as conn:
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 2).values(actor="someone else"))
    connect(monkeypatch, vault_settings)
    with pytest.raises(AirflowFailException, match=r"audit log broken in \d+ place"):
        VerifyAuditLogOperator(task_id="verify").execute({})


def test_a_store_that_is_down_is_retried(vault, vault_settings, monkeypatch, tmp_path):
    """The request's SQL store refuses connections: the store's step raises StoreUnavailable itself,
    which Airflow retries (DEFAULT_ARGS), instead of failing the request for good."""
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "acme-shop.yaml").write_text(
        "store: acme-shop\ncontroller: acme\nkind: sql\nconnection: acme_shop\n"
        "tables:\n  customers:\n    instruction: enquiry\n    primary_key: id\n"
        "    columns:\n      email: {category: contact, identity: email}\n"
        "    erasure: {action: delete}\n")
    monkeypatch.setenv("GDPR_DATAMAPS_DIR", str(maps))
    monkeypatch.setenv("GDPR_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("GDPR_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("AIRFLOW_CONN_ACME_SHOP", json.dumps({"conn_type": "gdpr-client-store",
                                                             "extra": {"sqlalchemy_url": DOWN}}))
    vault.add_controller("acme", "Acme", "england-and-wales", actor="test")
    instruct(vault, "acme")
    request_id = register_request(vault, controller_id="acme", kind="access", received_on=date(2026, 11, 24),
                                  identities={"email": ["a@example.com"]}, actor="test", at=AT)
    connect(monkeypatch, vault_settings)
    run = {"dag": SimpleNamespace(dag_id="dsar_fulfilment"), "dag_run": SimpleNamespace(run_id="manual__1")}
    pairs = PlanRequestsOperator(task_id="plan", request_ids=[request_id]).execute(run)
    assert {p["store"] for p in pairs} == {"vault", "acme-shop"}
    with pytest.raises(StoreUnavailable, match="store 'acme-shop' cannot be"):
        StoreStepOperator(task_id="search", request_id=request_id, store="acme-shop").execute(run)

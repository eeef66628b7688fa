"""The project as an Airflow provider: the connection form offers the vault and client-store types
with their own fields, read from Airflow's REST API as the UI reads them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def api(airflow_db, monkeypatch_module):
    monkeypatch_module.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch_module.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "a-secret-of-this-test-and-no-other-32b")
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app()) as client:
        yield client


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def hook_meta(api) -> dict[str, dict]:
    response = api.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    return {meta["connection_type"]: meta for meta in response.json()}


def test_the_vault_connection_has_its_own_fields(hook_meta):
    vault = hook_meta["gdpr-vault"]
    assert vault["hook_name"] == "GDPR vault"
    assert vault["hook_class_name"] == "gdpr.hooks.vault.VaultHook"
    assert set(vault["extra_fields"]) == {"database_url", "keystore_url", "keyring_path"}
    assert vault["extra_fields"]["database_url"]["schema"]["title"] == "Vault database URL"
    assert vault["extra_fields"]["database_url"]["schema"]["format"] == "password"  # a URL may hold a password
    assert vault["standard_fields"]["host"]["hidden"] is True


def test_the_client_store_connection_has_its_own_fields(hook_meta):
    store = hook_meta["gdpr-client-store"]
    assert store["hook_class_name"] == "gdpr.hooks.store.ClientStoreHook"
    assert set(store["extra_fields"]) == {"sqlalchemy_url"}
    assert store["standard_fields"]["url_schema"]["title"] == "Database"


def test_no_connection_type_of_the_project_has_an_underscore(hook_meta):
    """Airflow warns on every use of a connection type with '_' (RFC 3986 schemes have none)."""
    ours = [kind for kind, meta in hook_meta.items() if (meta["hook_class_name"] or "").startswith("gdpr.")]
    assert sorted(ours) == ["gdpr-client-store", "gdpr-vault"]

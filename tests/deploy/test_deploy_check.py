"""include/admin/deploy_check.py: each component of the scale-out refuses to start, naming the setting or folder,
when its settings are unfit or differ from the cluster's, or a folder is not the shared one; never printing a
secret. Folders and keyrings are real files in tmp_path; a marker edited by hand stands for one written on
another machine."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat

import pytest

from include.admin import deploy_check
from include.crypto.keyring import create_keyring

JWT = "a-jwt-secret-long-enough-for-hs512-signing-0123456789"
FERNET = base64.urlsafe_b64encode(b"k" * 32).decode()
PG = "postgresql+psycopg2://airflow@db-host:5432"
DIRS = {"GDPR_WORK_DIR": "work", "GDPR_OUTBOX_DIR": "outbox", "GDPR_REPORTS_DIR": "reports",
        "GDPR_SERVER_LOG_ROOT": "server-logs", "GDPR_DISCLOSURES_INBOX": "disclosures/inbox",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": "logs"}


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A valid machine's environment, its shared folders under tmp_path/var."""
    var = tmp_path / "var"
    create_keyring(var / "keyring" / "keyring.json")
    env = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/airflow",
           "AIRFLOW__CELERY__BROKER_URL": "redis://redis-host:6379/0",
           "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{PG}/airflow",
           "AIRFLOW__API_AUTH__JWT_SECRET": JWT,
           "AIRFLOW__CORE__FERNET_KEY": FERNET,
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:8080/execution/",
           "GDPR_VAULT_URL": f"{PG}/gdpr_vault", "GDPR_KEYSTORE_URL": f"{PG}/gdpr_keys",
           "GDPR_KEYRING_PATH": str(var / "keyring" / "keyring.json"),
           **{name: str(var / sub) for name, sub in DIRS.items()}}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return var


def test_a_recorded_cluster_checks_clean_and_its_markers_hold_no_secret(shared):
    assert deploy_check.check() == ["no shared folder holds the cluster's marker: initialise the cluster first "
                                    "(`make init-distributed` on one machine, with the shared storage mounted)"]
    assert deploy_check.record() == []
    assert deploy_check.check() == []
    markers = [shared / sub / deploy_check.MARKER for sub in [*DIRS.values(), "keyring"]]
    texts = {marker.read_text() for marker in markers}
    assert len(texts) == 1, "every folder carries the same cluster's marker"
    for marker in markers:
        assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    text = texts.pop()
    assert set(json.loads(text)["settings"]) == set(deploy_check.SHARED_SETTINGS)
    assert not [value for value in (JWT, FERNET, "127.0.0.1:8080") if value in text]


@pytest.mark.parametrize(("name", "value", "named"), [
    ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor", "must be CeleryExecutor"),
    ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////tmp/airflow.db", "not SQLite"),
    ("AIRFLOW__CELERY__BROKER_URL", "", "AIRFLOW__CELERY__BROKER_URL is not set"),
    ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql://airflow@db-host/airflow", "names no database driver"),
    ("AIRFLOW__API_AUTH__JWT_SECRET", "eighteen-byte-jwt!", "at least 32 bytes"),
    ("AIRFLOW__CORE__FERNET_KEY", "", "must be a Fernet key"),
    ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://api.example:8080/", "the API server's execution API"),
    ("GDPR_VAULT_URL", "sqlite:////tmp/vault.db", "GDPR_VAULT_URL must name a server database"),
])
def test_unfit_settings_are_refused_before_anything_is_written(shared, monkeypatch, name, value, named):
    monkeypatch.setenv(name, value)
    [problem] = deploy_check.record()
    assert named in problem
    assert not value or value not in problem, "messages name the setting, never its value"
    assert not (shared / "work").exists()


def test_a_result_backend_left_unset_falls_back_to_the_metadata_url_which_must_name_its_driver(shared, monkeypatch):
    monkeypatch.delenv("AIRFLOW__CELERY__RESULT_BACKEND")
    assert deploy_check.record() == []
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://airflow@db-host/airflow")
    assert any("names no database driver" in p for p in deploy_check.check())


@pytest.mark.parametrize("name", list(deploy_check.SHARED_SETTINGS))
def test_a_shared_setting_that_differs_from_the_clusters_is_named(shared, monkeypatch, name):
    assert deploy_check.record() == []
    other = {"AIRFLOW__API_AUTH__JWT_SECRET": JWT + "-other",
             "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(b"o" * 32).decode(),
             "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:9090/execution/"}[name]
    monkeypatch.setenv(name, other)
    [problem] = deploy_check.check()
    assert problem.startswith(f"{name} differs from the value the cluster was initialised with")
    assert other not in problem
    assert deploy_check.record() == [problem], "init again with other settings is refused too"


def test_a_local_folder_where_the_shared_one_should_be_is_named(shared, tmp_path, monkeypatch):
    assert deploy_check.record() == []
    monkeypatch.setenv("GDPR_WORK_DIR", str(tmp_path / "local-work"))
    [problem] = deploy_check.check()
    assert problem.startswith(f"GDPR_WORK_DIR ({tmp_path / 'local-work'}) is not the cluster's shared folder")


def test_a_folder_of_another_cluster_is_named(shared, tmp_path, monkeypatch):
    assert deploy_check.record() == []
    other = tmp_path / "other"
    monkeypatch.setenv("GDPR_OUTBOX_DIR", str(other / "outbox"))
    (other / "outbox").mkdir(parents=True)
    marker = json.loads((shared / "work" / deploy_check.MARKER).read_text())
    (other / "outbox" / deploy_check.MARKER).write_text(json.dumps({**marker, "cluster": "another"}))
    [problem] = deploy_check.check()
    assert problem.startswith(f"GDPR_OUTBOX_DIR ({other / 'outbox'}) belongs to another cluster")


def test_another_keyring_is_named(shared, tmp_path, monkeypatch):
    assert deploy_check.record() == []
    elsewhere = tmp_path / "elsewhere" / "keyring.json"
    create_keyring(elsewhere)
    shutil.copy(shared / "keyring" / deploy_check.MARKER, elsewhere.parent / deploy_check.MARKER)
    monkeypatch.setenv("GDPR_KEYRING_PATH", str(elsewhere))
    assert deploy_check.check() == ["the keyring differs from the one the cluster was initialised with: every "
                                    "machine must read the same keyring (GDPR_KEYRING_PATH on the shared storage, "
                                    "or the same secret)"]


def test_a_loopback_api_url_on_another_machine_than_the_clusters_is_named(shared):
    assert deploy_check.record() == []
    for marker in shared.rglob(deploy_check.MARKER):  # as written by init on the machine `api-host`
        marker.write_text(json.dumps({**json.loads(marker.read_text()), "host": "api-host"}))
    assert deploy_check.check() == [
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL points at 127.0.0.1, this machine, but the cluster was "
        "initialised on api-host: give the API server's address"]


def test_main_exits_1_naming_the_component(shared, monkeypatch, capsys):
    assert deploy_check.main(["record", "init"]) == 0
    assert deploy_check.main(["check", "worker.2"]) == 0
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "x" * 40)
    assert deploy_check.main(["check", "worker.2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: worker.2: AIRFLOW__API_AUTH__JWT_SECRET differs") and "x" * 40 not in err
    os.remove(shared / "keyring" / "keyring.json")
    assert deploy_check.main(["check"]) == 1
    assert "no keyring at" in capsys.readouterr().err

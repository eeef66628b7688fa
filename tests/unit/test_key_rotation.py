"""The key lifecycle: a rotation while tasks run strands nothing; sealed files still open with the
keyring and with their secret; retired KEKs are destroyed once nothing needs them, and then an
erased person's key cannot be recovered from the key store's raw files (table files, redo log,
write-ahead log), which it can before."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.errors import KeyringError
from include.crypto.envelope import unwrap_data_key
from include.crypto.keyring import load_keyring
from include.crypto.sealing import open_sealed, package_secret, sealed_kek_version
from include.demo.shop import SHOP_CONTROLLER
from include.requests.pipeline import RequestSettings, fulfil
from include.requests.register import register_request
from include.stores.base import Acting
from include.stores.identities import IdentitySet
from include.stores.vault import VaultStore
from include.vault import rotation
from include.vault.rotation import rotate_kek
from include.vault.schema import data_key
from include.vault.store import NewRecord, Vault
from tests.helpers import client_in_both

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


def enquiry(email: str) -> NewRecord:
    return NewRecord(SHOP_CONTROLLER, "enquiry", "answering the enquiry", "web form", {"email": email})


def package_for(stores, tmp_path: Path, email: str, n: int) -> Path:
    request_id = register_request(stores.vault, controller_id=SHOP_CONTROLLER, kind="access", received_on=AT.date(),
                                  identities={"email": [email]}, reference=f"K-{n}", actor="test", at=AT)
    done = fulfil(stores.vault, lambda _: stores, request_id,
                  RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox"), on=date(2026, 11, 24),
                  actor="test", at=AT)
    return Path(done["package"])


def test_a_process_holding_the_old_keyring_wraps_under_the_new_kek_after_a_rotation(stores, vault_settings, tmp_path):
    stale = stores.vault  # opened before the rotation, its keyring knows only version 1
    before = package_for(stores, tmp_path, client_in_both(), 1)
    secret = package_secret(before.read_bytes(), stale.keyring)
    result = rotate_kek(vault_settings, actor="test", sealed_dirs=[tmp_path / "outbox"])
    assert (result.old_version, result.new_version, result.destroyed, result.resealed) == (1, 2, [1], 1)
    assert set(load_keyring(vault_settings.keyring_path).keks) == {2}

    [record_id] = stale.add_records([enquiry("after.rotation@example.org")], actor="test")
    [subject] = stale.find_subjects(SHOP_CONTROLLER, "email", "after.rotation@example.org")
    with stale.keystore.engine.connect() as conn:
        assert conn.execute(sa.select(data_key.c.kek_version).where(data_key.c.subject_id == subject)).scalar() == 2
    with Vault.open(vault_settings) as fresh:
        assert fresh.read_record(record_id).fields["email"] == "after.rotation@example.org"
        # The package made before the rotation opens with the keyring (it was resealed) and its secret.
        assert sealed_kek_version(before.read_bytes()) == 2
        assert open_sealed(before.read_bytes(), keyring=fresh.keyring) == open_sealed(before.read_bytes(), secret=secret)
    after = package_for(stores, tmp_path, client_in_both(), 2)  # the stale process seals under version 2 too
    assert sealed_kek_version(after.read_bytes()) == 2


def test_an_interrupted_rotation_is_finished_by_running_it_again(stores, vault_settings, tmp_path, monkeypatch):
    package = package_for(stores, tmp_path, client_in_both(), 1)
    secret = package_secret(package.read_bytes(), stores.vault.keyring)
    [record_id] = stores.vault.add_records([enquiry("before.rotation@example.org")], actor="test")

    def killed(*args):
        raise RuntimeError("the worker died after rewrapping the data keys, before the sealed files")
    monkeypatch.setattr(rotation, "reseal", killed)
    with pytest.raises(RuntimeError, match="the worker died"):
        rotate_kek(vault_settings, actor="test", sealed_dirs=[tmp_path / "outbox"])
    assert set(load_keyring(vault_settings.keyring_path).keks) == {1, 2}
    assert sealed_kek_version(package.read_bytes()) == 1

    monkeypatch.undo()
    result = rotate_kek(vault_settings, actor="test", sealed_dirs=[tmp_path / "outbox"])
    assert (result.old_version, result.new_version, result.destroyed, result.resealed) == (2, 3, [1, 2], 1)
    assert set(load_keyring(vault_settings.keyring_path).keks) == {3}
    with Vault.open(vault_settings) as fresh:
        assert fresh.keystore.kek_versions_in_use() == {3}
        assert fresh.read_record(record_id).fields["email"] == "before.rotation@example.org"
        assert sealed_kek_version(package.read_bytes()) == 3
        assert open_sealed(package.read_bytes(), keyring=fresh.keyring) == open_sealed(package.read_bytes(),
                                                                                       secret=secret)


def test_a_rotation_while_an_ingest_and_an_access_request_run_strands_nothing(stores, vault_settings, tmp_path):
    sealed_before = package_for(stores, tmp_path, client_in_both(), 1)
    secret = package_secret(sealed_before.read_bytes(), stores.vault.keyring)
    written, failures, packages = [], [], []

    def ingest():
        with Vault.open(vault_settings) as vault:
            for n in range(40):
                written.extend(vault.add_records([enquiry(f"ingest.{n}.{i}@example.org") for i in range(25)],
                                                 actor="test"))

    def access():
        for n in range(3):
            packages.append(package_for(stores, tmp_path, client_in_both(), 10 + n))

    def rotate():
        for _ in range(3):
            rotate_kek(vault_settings, actor="test", sealed_dirs=[tmp_path / "outbox"])

    def guarded(job):
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
    threads = [threading.Thread(target=guarded, args=(job,)) for job in (ingest, access, rotate)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rotate_kek(vault_settings, actor="test", sealed_dirs=[tmp_path / "outbox"])  # the next week's run
    keyring = load_keyring(vault_settings.keyring_path)
    with Vault.open(vault_settings) as vault:
        assert len(vault.read_records(written)) == 1000
        assert vault.keystore.kek_versions_in_use() == {keyring.active_kek} and set(keyring.keks) == {keyring.active_kek}
        for path in [sealed_before, *packages]:
            assert open_sealed(path.read_bytes(), keyring=vault.keyring)
        assert open_sealed(sealed_before.read_bytes(), secret=secret)


# -- the raw files of the key store ------------------------------------------------------------

def raw_files(engine) -> list[Path]:
    """The key store's table file and its server's redo or write-ahead log files, as on disk."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("CHECKPOINT")
            data = Path(conn.exec_driver_sql("SHOW data_directory").scalar())
            table = data / conn.exec_driver_sql("SELECT pg_relation_filepath('data_key')").scalar()
            return [table, *sorted((data / "pg_wal").glob("0*"))]
        data = Path(conn.exec_driver_sql("SELECT @@datadir").scalar())
        database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
        conn.exec_driver_sql("FLUSH TABLES data_key FOR EXPORT")  # table pages written to the .ibd
        conn.exec_driver_sql("UNLOCK TABLES")
        return [data / database / "data_key.ibd", *sorted(data.glob("ib_logfile*"))]


def recovered(files: list[Path], subject_id: str, keyring) -> bool:
    """Whether any copy of the subject's wrapped key in the files unwraps with the keyring: every
    60-byte window near each occurrence of the subject's id is tried under every KEK it holds."""
    needle = subject_id.encode()
    for path in files:
        data = path.read_bytes()
        at = data.find(needle)
        while at != -1:
            for start in range(max(0, at - 400), min(len(data) - 60, at + 400)):
                for version in keyring.keks:
                    try:
                        unwrap_data_key(keyring.kek(version), subject_id, data[start:start + 60])
                        return True
                    except KeyringError:
                        pass
            at = data.find(needle, at + 1)
    return False


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_an_erased_key_cannot_be_recovered_from_raw_files_once_its_kek_is_destroyed(vault, vault_settings,
                                                                                    backend):
    from tests.helpers import instruct

    instruct(vault, SHOP_CONTROLLER, {"enquiry": "until the enquiry is closed"})
    vault.add_records([enquiry(f"neighbour.{n}@example.org") for n in range(20)], actor="test")
    vault.add_records([enquiry("erased.person@example.org")], actor="test")
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", "erased.person@example.org")
    store, acting = VaultStore(vault, SHOP_CONTROLLER), Acting(SHOP_CONTROLLER, "r-1", "test", AT,
                                                                book=vault.instruction_book())
    store.apply_erasure(store.plan_erasure(IdentitySet.given([("email", "erased.person@example.org")]), acting),
                        acting)
    assert vault.keystore.fetch([subject]) == {}
    if not all(path.exists() and path.stat().st_size for path in raw_files(vault.keystore.engine)):
        pytest.fail(f"the {backend} server's files cannot be read here")
    # The control: the deleted row's key is still on disk, and the keyring still unwraps it.
    assert recovered(raw_files(vault.keystore.engine), subject, load_keyring(vault_settings.keyring_path))

    rotate_kek(vault_settings, actor="test")
    keyring = load_keyring(vault_settings.keyring_path)
    assert 1 not in keyring.keks
    assert not recovered(raw_files(vault.keystore.engine), subject, keyring)
    with Vault.open(vault_settings) as reopened:  # the neighbours are untouched
        assert len(reopened.find_subjects(SHOP_CONTROLLER, "email", "neighbour.3@example.org")) == 1

"""The vault on SQLite, PostgreSQL and MariaDB: encryption at rest, lookup, shredding, rotation."""

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.errors import DataKeyDestroyed, InvalidInput, KeyringError, UnknownRecord, VaultError
from include.common.settings import VaultSettings
from include.crypto.keyring import create_keyring, load_keyring
from include.vault.rotation import rotate_kek
from include.vault.schema import data_key, record, record_field
from include.vault.store import NewRecord, Vault
from tests.helpers import instruct

ADA = {"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "01733 267775",
       "message": "Please quote for a shop"}


def enquiry(**fields):
    return NewRecord(controller_id="acme", category="enquiry", purpose="answering the enquiry",
                     source="web form", fields=fields or ADA)


@pytest.fixture
def acme(vault):
    vault.add_controller("acme", "Acme Ltd", "england-and-wales", actor="test")
    instruct(vault, "acme")
    return vault


def table_bytes(engine) -> bytes:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(record_field.c.ciphertext, record_field.c.lookup)).all()
    return b"".join(bytes(c) + (lookup or "").encode() for c, lookup in rows)


def test_fields_are_encrypted_at_rest_and_decrypt_back(acme):
    (rid,) = acme.add_records([enquiry()], actor="test")
    stored = table_bytes(acme.engine)
    for value in ADA.values():
        assert value.encode() not in stored
    view = acme.read_record(rid)
    assert view.fields == ADA
    assert (view.controller_id, view.category, view.purpose, view.source) == \
        ("acme", "enquiry", "answering the enquiry", "web form")
    assert view.created_at.tzinfo is not None


def test_records_of_one_email_share_one_subject_and_are_found_by_blind_index(acme):
    first, second = acme.add_records([enquiry(), enquiry(email="ada@example.COM", name="A. L.")],
                                     actor="test")
    third = acme.add_records([enquiry(email="bob@example.com")], actor="test")[0]
    subject = acme.read_record(first).subject_id
    assert acme.read_record(second).subject_id == subject
    assert acme.read_record(third).subject_id != subject
    assert acme.find_subjects("acme", "email", " ADA@example.com") == [subject]
    assert acme.find_records("acme", "phone", "+441733267775") == sorted([first])
    assert acme.find_subjects("acme", "email", "nobody@example.com") == []


def test_shredding_a_subject_makes_their_records_unreadable_forever(acme):
    (rid,) = acme.add_records([enquiry()], actor="test")
    subject = acme.read_record(rid).subject_id
    assert acme.shred([subject]) == 1
    with pytest.raises(DataKeyDestroyed, match=subject):
        acme.read_record(rid)
    assert acme.shred([subject]) == 0  # idempotent


def test_bad_records_are_refused_before_anything_is_written(acme):
    before = acme.counts()
    bad = [
        (NewRecord("nobody", "enquiry", "p", "s", {"email": "a@example.com"}), "controller 'nobody'"),
        (enquiry(email="not-an-email"), r"record #1: email is not a valid address"),
        (NewRecord("acme", "enquiry", "p", "s", {"name": "x"}), "no subject_id and no 'email'"),
        (NewRecord("acme", "", "p", "s", {"email": "a@example.com"}), "'category' must be non-empty"),
        (NewRecord("acme", ["enquiry"], "p", "s", {"email": "a@example.com"}), "'category' must be non-empty"),  # type: ignore[arg-type]
        (NewRecord("acme", "enquiry", "p", "s", {"email": 5}), "field 'email' must be text"),
        (NewRecord("acme", "enquiry", "p", "s", {"email": "a@example.com"}, role="boss"),
         "role 'boss'"),
    ]
    for rec, message in bad:
        with pytest.raises((InvalidInput, UnknownRecord), match=message):
            acme.add_records([enquiry(), rec], actor="test")
    assert acme.counts() == before


def test_a_bad_identity_after_the_email_names_its_record_and_writes_no_record(acme):
    before = acme.counts()["records"]
    with pytest.raises(InvalidInput, match=r"^record #1: phone has the wrong number of digits"):
        acme.add_records([enquiry(), enquiry(email="b@example.com", phone="12")], actor="test")
    assert acme.counts()["records"] == before


def test_unknown_record_is_named(acme):
    with pytest.raises(UnknownRecord, match="record 0{32} does not exist"):
        acme.read_record("0" * 32)


def test_wrong_keyring_is_refused_and_writes_nothing(acme, vault_settings, tmp_path):
    acme.add_records([enquiry()], actor="test")
    before = (acme.counts(), table_bytes(acme.engine))
    other = tmp_path / "other" / "keyring.json"
    create_keyring(other)
    wrong = vault_settings.model_copy(update={"keyring_path": other})
    for create in (False, True):
        with pytest.raises(KeyringError, match="is not the keyring of the vault"):
            Vault.open(wrong, create=create)
    assert (acme.counts(), table_bytes(acme.engine)) == before


def test_a_keyring_secret_wins_over_keyring_path(acme, vault_settings, tmp_path):
    (rid,) = acme.add_records([enquiry()], actor="test")
    other = tmp_path / "other" / "keyring.json"
    create_keyring(other)  # the path names another keyring: alone, it is refused (the test above)
    both = VaultSettings(vault_url=vault_settings.vault_url, keystore_url=vault_settings.keystore_url,
                         keyring_path=other, keyring_secret=vault_settings.keyring_path.read_text())
    with Vault.open(both) as opened:
        assert opened.keyring.fingerprint == acme.keyring.fingerprint != load_keyring(other).fingerprint
        assert opened.read_record(rid).fields["name"] == "Ada Lovelace"


def test_missing_keyring_is_refused_and_creates_nothing(store_urls, tmp_path, backend):
    settings = VaultSettings(vault_url=store_urls["vault"], keystore_url=store_urls["keys"],
                             keyring_path=tmp_path / "absent" / "keyring.json")
    with pytest.raises(KeyringError, match="no keyring at"):
        Vault.open(settings, create=True)
    assert not (tmp_path / "absent").exists()
    engine = sa.create_engine(store_urls["vault"])
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_vault_without_schema_says_how_to_make_one(vault_settings, store_urls):
    fresh = vault_settings.model_copy(update={"vault_url": store_urls["copy"]})
    with pytest.raises(VaultError, match="has no schema: run `gdpr-admin vault init`"):
        Vault.open(fresh)


def test_store_that_is_down_gives_a_clear_error(vault_settings):
    down = vault_settings.model_copy(update={
        "vault_url": "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"})
    with pytest.raises(VaultError, match="unreachable .*127.0.0.1:1/nowhere.*OperationalError"):
        Vault.open(down)


def test_kek_rotation_rewraps_keys_without_touching_records(acme, vault_settings):
    ids = acme.add_records([enquiry(email=f"p{i}@example.com") for i in range(30)], actor="test")
    with acme.engine.connect() as conn:
        records_before = conn.execute(sa.select(record_field).order_by(
            record_field.c.record_id, record_field.c.name)).all()
    with acme.keystore.engine.connect() as conn:
        wrapped_before = dict(conn.execute(sa.select(data_key.c.subject_id, data_key.c.wrapped)).all())
    result = rotate_kek(vault_settings, actor="test")
    assert (result.old_version, result.new_version, result.rewrapped) == (1, 2, 30)
    keyring = load_keyring(vault_settings.keyring_path)
    assert set(keyring.keks) == {2}  # the old KEK is gone once nothing needs it
    with Vault.open(vault_settings) as reopened:
        with reopened.engine.connect() as conn:
            assert conn.execute(sa.select(record_field).order_by(
                record_field.c.record_id, record_field.c.name)).all() == records_before
        with reopened.keystore.engine.connect() as conn:
            wrapped_after = dict(conn.execute(sa.select(data_key.c.subject_id, data_key.c.wrapped)).all())
        assert wrapped_after.keys() == wrapped_before.keys()
        assert all(wrapped_after[s] != wrapped_before[s] for s in wrapped_before)
        assert [v.fields["email"] for v in reopened.read_records(ids)] == \
            [f"p{i}@example.com" for i in range(30)]


def test_cipher_cache_stays_bounded_and_serves_large_requests(acme, monkeypatch):
    monkeypatch.setattr("include.vault.store._CIPHER_CACHE_LIMIT", 10)
    ids = []
    for start in range(0, 24, 8):
        ids += acme.add_records([enquiry(email=f"p{i}@example.com") for i in range(start, start + 8)],
                                actor="test")
        assert len(acme._ciphers) <= 10
    views = acme.read_records(ids)  # more subjects than the cache holds, in one call
    assert [v.fields["email"] for v in views] == [f"p{i}@example.com" for i in range(24)]


def test_ids_are_time_ordered_and_unique():
    from include.vault.store import new_ids

    first, second = new_ids(1000), new_ids(1000)
    assert len(set(first + second)) == 2000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)
    assert first[0][:12] <= second[0][:12]  # the millisecond prefix never goes back


def test_lookups_use_the_partial_indexes_on_sqlite(tmp_path):
    """The blind index and the parent index leave out NULL rows; SQLite's planner must still go
    through them rather than scan (it has to prove `lookup = x` implies `lookup IS NOT NULL`)."""
    create_keyring(tmp_path / "keyring.json")
    acme = Vault.open(VaultSettings(vault_url=f"sqlite:///{tmp_path / 'vault.db'}",
                                   keyring_path=tmp_path / "keyring.json"), create=True)
    acme.add_controller("acme", "Acme Ltd", "england-and-wales", actor="test")
    instruct(acme, "acme")
    acme.add_records([enquiry(email=f"p{i}@example.com", message="hello") for i in range(50)],
                     actor="test")
    queries = {
        "ix_record_field_lookup": sa.select(record_field.c.record_id).where(
            record_field.c.name == "email", record_field.c.lookup == "00" * 32),
        "ix_record_parent_id": sa.select(record.c.id).where(record.c.parent_id == "0" * 32),
    }
    with acme.engine.connect() as conn:
        for index, query in queries.items():
            sql = str(query.compile(acme.engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert index in plan, plan
    acme.dispose()


def other_names_for(url: str, tmp_path) -> list[str]:
    """Other URLs of the same database: the server's address by another name, or the SQLite file by
    a symlink, through `..`, and (once it exists) by a hard link."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.touch()
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "link.db").symlink_to(path)
        (tmp_path / "dir-link").symlink_to(path.parent, target_is_directory=True)
        os.link(path, tmp_path / "elsewhere" / "hard.db")
        return [f"sqlite:///{tmp_path / 'elsewhere' / 'link.db'}",
                f"sqlite:///{path.parent / 'elsewhere' / '..' / path.name}",
                f"sqlite:///{tmp_path / 'dir-link' / path.name}",
                f"sqlite:///{tmp_path / 'elsewhere' / 'hard.db'}"]
    parsed = sa.make_url(url)
    return [parsed.set(host="localhost").render_as_string(hide_password=False),
            parsed.set(host="localhost", port=None).render_as_string(hide_password=False),
            parsed.set(host="LOCALHOST").render_as_string(hide_password=False)]


def test_the_key_store_is_refused_in_the_vault_database_under_any_name(store_urls, tmp_path, backend):
    """127.0.0.1 and localhost, or a symlink and its file, are one database: the keys stay out of it."""
    keyring_path = tmp_path / "keyring" / "keyring.json"
    for keys in other_names_for(store_urls["vault"], tmp_path):
        assert keys != store_urls["vault"]
        with pytest.raises(ValueError, match="keystore_url must name a different database from vault_url: "
                                             "both reach the (SQLite file|postgresql database|mysql database)"):
            VaultSettings(vault_url=store_urls["vault"], keystore_url=keys, keyring_path=keyring_path)
    # Another database on the same server, or another file, is a key store.
    keys = store_urls["keys"].replace("127.0.0.1", "localhost")
    settings = VaultSettings(vault_url=store_urls["vault"], keystore_url=keys, keyring_path=keyring_path)
    assert settings.keystore_url == keys


def test_a_vault_database_holding_data_keys_is_refused(store_urls, tmp_path, backend):
    """Keys that landed in the vault's database (before the check above) are found when it is opened."""
    from include.vault.schema import keystore_metadata

    engine = sa.create_engine(store_urls["vault"])
    keystore_metadata.create_all(engine)
    key_tables = set(sa.inspect(engine).get_table_names())
    create_keyring(tmp_path / "keyring.json")
    settings = VaultSettings(vault_url=store_urls["vault"], keystore_url=store_urls["keys"],
                             keyring_path=tmp_path / "keyring.json")
    for create in (True, False):
        with pytest.raises(VaultError, match=r"holds data keys \(table data_key\): the vault must be another "
                                             r"database from the key store"):
            Vault.open(settings, create=create)
    assert set(sa.inspect(engine).get_table_names()) == key_tables  # nothing of the vault was made there
    engine.dispose()


def test_a_key_store_holding_the_vault_is_refused(store_urls, tmp_path, backend):
    from include.vault.schema import vault_metadata

    engine = sa.create_engine(store_urls["keys"])
    vault_metadata.create_all(engine)
    create_keyring(tmp_path / "keyring.json")
    settings = VaultSettings(vault_url=store_urls["vault"], keystore_url=store_urls["keys"],
                             keyring_path=tmp_path / "keyring.json")
    with pytest.raises(VaultError, match=r"the key store at .* holds the vault's tables \(vault_meta\)"):
        Vault.open(settings, create=True)
    assert "data_key" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_the_tables_the_engines_look_for_are_the_schemas():
    from include.vault.db import KEY_TABLE, VAULT_TABLE
    from include.vault.schema import data_key, keystore_metadata, vault_meta, vault_metadata

    assert (KEY_TABLE, VAULT_TABLE) == (data_key.name, vault_meta.name)
    assert KEY_TABLE not in vault_metadata.tables and VAULT_TABLE not in keystore_metadata.tables

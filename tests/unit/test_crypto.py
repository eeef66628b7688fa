"""Keyring, envelope encryption and blind indexes, without a database."""

import hashlib
import hmac
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from include.common.errors import InvalidInput, KeyringError, VaultError
from include.crypto.blind_index import BlindIndexer
from include.crypto.envelope import (
    FieldCipher,
    new_data_key,
    new_data_keys,
    unwrap_data_key,
    wrap_data_key,
    wrap_data_keys,
)
from include.crypto.keyring import Keyring, create_keyring, load_keyring, save_keyring


def test_keyring_is_created_private_and_reloads(tmp_path):
    path = tmp_path / "ring" / "keyring.json"
    created = create_keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_keyring(path)
    assert loaded.fingerprint == created.fingerprint
    assert loaded.keks == created.keks and loaded.root_key == created.root_key


def test_existing_keyring_is_never_overwritten(tmp_path):
    path = tmp_path / "keyring.json"
    first = create_keyring(path)
    with pytest.raises(KeyringError, match="already exists"):
        create_keyring(path)
    assert load_keyring(path).fingerprint == first.fingerprint


def test_missing_keyring_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(KeyringError, match=r"no keyring at .*nowhere\.json.*keyring init"):
        load_keyring(tmp_path / "nowhere.json")


def test_keyring_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "keyring.json"
    create_keyring(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="accessible by others.*0644"):
        load_keyring(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("root_key"), "'root_key' is missing"),
    (lambda d: d.update(format=9), "'format' must be 1"),
    (lambda d: d.update(root_key="not base64!"), "root_key is not valid base64"),
    (lambda d: d.update(root_key="AAAA"), "must be 32 bytes, found 3"),
    (lambda d: d.update(active_kek=7), "active_kek 7 is not among keks"),
    (lambda d: d.update(keks={}), "'keks' must be a non-empty object"),
])
def test_malformed_keyring_errors_name_the_field(tmp_path, mutate, message):
    doc = json.loads(Keyring.generate().to_json())
    mutate(doc)
    with pytest.raises(KeyringError, match=message):
        Keyring.from_json(json.dumps(doc), "test")


def test_keyring_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "keyring.json"
    save_keyring(Keyring.generate(), path)
    path.write_text("{not json")
    with pytest.raises(KeyringError, match="not valid JSON"):
        load_keyring(path)


def test_wrapped_data_key_is_bound_to_its_subject_and_kek():
    kek, other = os.urandom(32), os.urandom(32)
    key = new_data_key()
    wrapped = wrap_data_key(kek, "a" * 32, key)
    assert unwrap_data_key(kek, "a" * 32, wrapped) == key
    with pytest.raises(KeyringError, match="does not unwrap"):
        unwrap_data_key(kek, "b" * 32, wrapped)
    with pytest.raises(KeyringError, match="does not unwrap"):
        unwrap_data_key(other, "a" * 32, wrapped)


def test_data_keys_of_a_batch_are_distinct_and_wrap_each_to_its_subject():
    kek = os.urandom(32)
    keys = new_data_keys(3)
    assert len(set(keys)) == 3 and all(len(key) == 32 for key in keys)
    subjects = ["a" * 32, "b" * 32, "c" * 32]
    wrapped = wrap_data_keys(kek, list(zip(subjects, keys, strict=True)))
    assert len({blob[:12] for blob in wrapped}) == 3  # a nonce of its own each
    assert [unwrap_data_key(kek, sid, blob) for sid, blob in zip(subjects, wrapped, strict=True)] == keys
    with pytest.raises(KeyringError, match="does not unwrap"):
        unwrap_data_key(kek, subjects[1], wrapped[0])


def test_fields_encrypted_together_are_what_encrypt_makes_with_the_nonces_given():
    key = new_data_key()
    cipher = FieldCipher(key)
    fields = {"name": "Ada", "email": "ada@example.com"}
    nonces = os.urandom(24)
    blobs = cipher.encrypt_fields("r1", fields, nonces)
    assert [blob[:12] for blob in blobs] == [nonces[:12], nonces[12:]]
    assert AESGCM(key).decrypt(blobs[1][:12], blobs[1][12:], b"r1\x1femail") == b"ada@example.com"
    assert [cipher.decrypt("r1", name, blob) for name, blob in zip(fields, blobs, strict=True)] == list(fields.values())
    with pytest.raises(ValueError, match="2 fields need 24 bytes of nonces, got 12"):
        cipher.encrypt_fields("r1", fields, nonces[:12])


def test_field_ciphertext_is_bound_to_record_and_field():
    cipher = FieldCipher(new_data_key())
    blob = cipher.encrypt("r1", "email", "ada@example.com")
    assert b"ada@example.com" not in blob
    assert cipher.decrypt("r1", "email", blob) == "ada@example.com"
    assert cipher.encrypt("r1", "email", "ada@example.com") != blob  # random nonce
    for record_id, field in (("r2", "email"), ("r1", "phone")):
        with pytest.raises(VaultError, match="fails authentication"):
            cipher.decrypt(record_id, field, blob)


def test_field_cipher_is_standard_aes_gcm():
    key = new_data_key()
    blob = FieldCipher(key).encrypt("r1", "name", "Ada")
    assert AESGCM(key).decrypt(blob[:12], blob[12:], b"r1\x1fname") == b"Ada"


def test_blind_index_normalises_and_separates_controllers_and_keyrings():
    keyring = Keyring.generate()
    index = BlindIndexer(keyring)
    assert index.digest("email", "c1", " Ada@Example.COM ") == index.digest("email", "c1", "ada@example.com")
    assert index.digest("phone", "c1", "01733 267775") == index.digest("phone", "c1", "+441733267775")
    assert index.digest("email", "c1", "ada@example.com") != index.digest("email", "c2", "ada@example.com")
    assert BlindIndexer(Keyring.generate()).digest("email", "c1", "ada@example.com") != \
        index.digest("email", "c1", "ada@example.com")
    # One key per identity kind, all different.
    assert len(set(index._keys.values())) == len(index._keys) == 4


def test_blind_index_is_the_hmac_stored_indexes_hold():
    index = BlindIndexer(Keyring.generate())
    for kind, value, normalised in (("email", " Ada@Example.COM ", "ada@example.com"),
                                    ("phone", "01733 267775", "+441733267775")):
        for controller_id in ("c1", "c2", "c1"):  # the second c1 reuses its precomputed HMAC state
            expected = hmac.new(index._keys[kind], f"{controller_id}\x00{normalised}".encode(),
                                hashlib.sha256).hexdigest()
            assert index.digest(kind, controller_id, value) == expected
    with pytest.raises(InvalidInput, match="'name' has no blind index"):
        index.digest("name", "c1", "Ada")


def test_rotation_adds_a_kek_and_retires_the_old_one():
    keyring = Keyring.generate()
    rotated = keyring.with_new_kek()
    assert rotated.active_kek == 2 and set(rotated.keks) == {1, 2}
    assert rotated.fingerprint == keyring.fingerprint  # the root key stays: blind indexes hold
    assert set(rotated.without_keks({1}).keks) == {2}
    with pytest.raises(KeyringError, match="the active key-encryption key \\(version 2\\) cannot be destroyed"):
        rotated.without_keks({2})

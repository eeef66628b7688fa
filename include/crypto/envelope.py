"""Envelope encryption: a KEK wraps each data subject's data key; the data key encrypts fields.

AES-256-GCM with random 96-bit nonces. The subject id is bound to the wrapped key, and the record
id and field name to each field's ciphertext, as associated data: a ciphertext moved to another
record or field fails to decrypt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from include.common.errors import KeyringError, VaultError

NONCE_BYTES = 12
DATA_KEY_BYTES = 32  # AES-256


def new_data_key() -> bytes:
    return new_data_keys(1)[0]


def new_data_keys(count: int) -> list[bytes]:
    """count fresh data keys, sliced from one os.urandom call (what AESGCM.generate_key returns
    for each, at a fraction of the cost of a call per key in a batch)."""
    random = os.urandom(DATA_KEY_BYTES * count)
    return [random[i:i + DATA_KEY_BYTES] for i in range(0, len(random), DATA_KEY_BYTES)]


def wrap_data_key(kek: bytes, subject_id: str, data_key: bytes) -> bytes:
    return wrap_data_keys(kek, [(subject_id, data_key)])[0]


def wrap_data_keys(kek: bytes, keys: Sequence[tuple[str, bytes]]) -> list[bytes]:
    """Each (subject id, data key) wrapped, with nonces sliced from one os.urandom call for all."""
    encrypt = AESGCM(kek).encrypt
    nonces = os.urandom(NONCE_BYTES * len(keys))
    wrapped = []
    start = 0
    for subject_id, data_key in keys:
        nonce = nonces[start:start + NONCE_BYTES]
        start += NONCE_BYTES
        wrapped.append(nonce + encrypt(nonce, data_key, b"data-key\x1f" + subject_id.encode()))
    return wrapped


def unwrap_data_key(kek: bytes, subject_id: str, wrapped: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                   b"data-key\x1f" + subject_id.encode())
    except InvalidTag:
        raise KeyringError(
            f"the data key of subject {subject_id} does not unwrap with this keyring: "
            "wrong keyring, or the key store was altered"
        ) from None


class FieldCipher:
    """Encrypts and decrypts one data subject's fields with their data key."""

    __slots__ = ("_aead",)

    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)

    def encrypt(self, record_id: str, field: str, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value.encode(), f"{record_id}\x1f{field}".encode())

    def encrypt_fields(self, record_id: str, fields: Mapping[str, str], nonces: bytes) -> list[bytes]:
        """What encrypt gives for each field, in the mapping's order, with the nonces given:
        NONCE_BYTES fresh random bytes per field, never given again (a nonce used twice under one
        key breaks GCM). A slice of one os.urandom call for a batch costs less than a call per field."""
        if len(nonces) != NONCE_BYTES * len(fields):
            raise ValueError(f"{len(fields)} fields need {NONCE_BYTES * len(fields)} bytes of nonces, "
                             f"got {len(nonces)}")
        encrypt = self._aead.encrypt
        prefix = record_id + "\x1f"
        blobs = []
        start = 0
        for field, value in fields.items():
            nonce = nonces[start:start + NONCE_BYTES]
            start += NONCE_BYTES
            blobs.append(nonce + encrypt(nonce, value.encode(), (prefix + field).encode()))
        return blobs

    def decrypt(self, record_id: str, field: str, blob: bytes) -> str:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                      f"{record_id}\x1f{field}".encode()).decode()
        except InvalidTag:
            raise VaultError(f"field '{field}' of record {record_id} fails authentication: "
                             "altered, or moved from another record") from None

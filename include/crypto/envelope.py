"""Envelope encryption: a KEK wraps each data subject's data key; the data key encrypts fields.

AES-256-GCM with random 96-bit nonces. The subject id is bound to the wrapped key, and the record
id and field name to each field's ciphertext, as associated data: a ciphertext moved to another
record or field fails to decrypt.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from include.common.errors import KeyringError, VaultError

NONCE_BYTES = 12


def new_data_key() -> bytes:
    return AESGCM.generate_key(256)


def wrap_data_key(kek: bytes | AESGCM, subject_id: str, data_key: bytes) -> bytes:
    """kek: the key, or an AESGCM made of it once for a batch of wraps."""
    nonce = os.urandom(NONCE_BYTES)
    aead = kek if isinstance(kek, AESGCM) else AESGCM(kek)
    return nonce + aead.encrypt(nonce, data_key, b"data-key\x1f" + subject_id.encode())


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

    def decrypt(self, record_id: str, field: str, blob: bytes) -> str:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                      f"{record_id}\x1f{field}".encode()).decode()
        except InvalidTag:
            raise VaultError(f"field '{field}' of record {record_id} fails authentication: "
                             "altered, or moved from another record") from None

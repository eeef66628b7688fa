"""Key-encryption-key rotation: rewrap every data key under a new KEK, records untouched.

The new keyring (old and new KEK) is saved before any key is rewrapped, and the old KEK is retired
only when no data key needs it, so a rotation stopped at any point is finished by running it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.clock import utcnow
from include.crypto.keyring import save_keyring
from include.errors import KeyringError
from include.settings import VaultSettings
from include.vault.store import Vault


@dataclass(frozen=True)
class RotationResult:
    old_version: int
    new_version: int
    rewrapped: int


def rotate_kek(settings: VaultSettings, *, actor: str) -> RotationResult:
    if settings.keyring_secret:
        raise KeyringError("the keyring comes from a secret: rotate it in the secrets backend "
                           "with `gdpr-admin keyring rotate` against a keyring file, then store that")
    with Vault.open(settings) as vault:
        old = vault.keyring.active_kek
        rotated = vault.keyring.with_new_kek()
        save_keyring(rotated, settings.keyring_path)
    with Vault.open(settings) as vault:
        rewrapped = vault.keystore.rewrap()
        if vault.keystore.kek_versions_in_use() <= {rotated.active_kek}:
            save_keyring(rotated.retire_old_keks(), settings.keyring_path)
        with vault.engine.begin() as conn:
            vault.audit.append(conn, at=utcnow(), actor=actor, action="keyring.kek_rotated",
                               details={"from_version": old, "to_version": rotated.active_kek,
                                        "data_keys_rewrapped": rewrapped})
    return RotationResult(old, rotated.active_kek, rewrapped)

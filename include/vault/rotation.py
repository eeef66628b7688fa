"""Key-encryption-key rotation, and the destruction of retired KEKs that makes crypto-shredding hold
on every backend.

A deleted data key can linger where no DELETE reaches: a table file's free space, a redo log, the
write-ahead log, a backup. It is wrapped under the KEK that was active when it was made, so the
guarantee is cryptographic: rotate to a new KEK, rewrap every live data key and every sealed file
under it, then destroy each retired KEK that nothing live is wrapped under. Every lingering copy
of an erased key is then wrapped under a destroyed KEK. The `kek_rotation` workflow does this
weekly, so an erased person's key is beyond recovery everywhere within 7 days.

Safe while tasks run and if stopped at any point: the new keyring (old KEKs kept) is saved before
the key store records the new active version; a wrap under the old version that was in flight
commits before the switch (the key store's lock) and is rewrapped; a process holding the old
keyring reads it again when it meets the new version; a retired KEK is destroyed only once no data
key and no sealed file needs it, and a run stopped before that leaves it for the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from include.common.clock import utcnow
from include.common.errors import InvalidInput, KeyringError
from include.common.files import write_atomically
from include.common.settings import VaultSettings
from include.crypto.keyring import load_keyring, save_keyring
from include.crypto.sealing import reseal, sealed_kek_version
from include.vault.store import Vault


@dataclass
class RotationResult:
    old_version: int
    new_version: int
    rewrapped: int = 0
    resealed: int = 0
    destroyed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # retired KEKs still needed (a sealed file a run could not read)


def sealed_files(directories: Sequence[Path]) -> list[Path]:
    """The sealed files (packages, mailing-list exports, processed disclosure batches) under them."""
    return sorted(p for d in directories if Path(d).is_dir() for p in Path(d).rglob("*.gdprpkg") if p.is_file())


def rotate_kek(settings: VaultSettings, *, actor: str, sealed_dirs: Sequence[Path] = ()) -> RotationResult:
    """A new active KEK; then every live data key and sealed file rewrapped under it, and the
    retired KEKs nothing needs any more destroyed."""
    if settings.keyring_secret:
        raise KeyringError("the keyring comes from a secret: rotate it in the secrets backend "
                           "with `gdpr-admin keyring rotate` against a keyring file, then store that")
    with Vault.open(settings) as vault:
        old = vault.keystore.active_version()
        rotated = load_keyring(settings.keyring_path).with_new_kek()
        save_keyring(rotated, settings.keyring_path)  # the new KEK exists before anything is wrapped under it
        vault.keystore.keyring = rotated
        vault.keystore.set_active_version(rotated.active_kek)
    result = retire_keks(settings, actor=actor, sealed_dirs=sealed_dirs)
    result.old_version = old
    return result


def retire_keks(settings: VaultSettings, *, actor: str, sealed_dirs: Sequence[Path] = ()) -> RotationResult:
    """Rewrap what is still under a retired KEK, then destroy the retired KEKs nothing needs."""
    with Vault.open(settings) as vault:
        keyring = vault.keystore.current_keyring()
        result = RotationResult(keyring.active_kek, keyring.active_kek)
        result.rewrapped = vault.keystore.rewrap()
        needed: set[int] = set()
        for path in sealed_files(sealed_dirs):
            data = path.read_bytes()
            try:
                version = sealed_kek_version(data)
            except InvalidInput:
                continue  # not a file this project sealed
            if version == keyring.active_kek:
                continue
            try:
                write_atomically(path, reseal(data, keyring), mode=path.stat().st_mode & 0o777)
                result.resealed += 1
            except KeyringError:  # altered, or under a KEK already gone: its KEK is kept for a person to see
                needed.add(version)
        needed |= vault.keystore.kek_versions_in_use()
        retired = set(keyring.keks) - {keyring.active_kek}
        result.destroyed = sorted(retired - needed)
        result.kept = sorted(retired & needed)
        if result.destroyed:
            save_keyring(load_keyring(settings.keyring_path).without_keks(set(result.destroyed)),
                         settings.keyring_path)
        vault.record_event("keyring.kek_rotated", actor=actor, at=utcnow(), details={
            "active_version": keyring.active_kek, "data_keys_rewrapped": result.rewrapped,
            "sealed_files_rewrapped": result.resealed, "keks_destroyed": result.destroyed,
            "keks_kept": result.kept})
    return result


"""The data-key store: one wrapped data key per data subject, in its own database.

Kept apart from the vault so that a copy of the vault holds ciphertext and no keys: destroying a
subject's key here puts every copy of their records beyond use (crypto-shredding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, delete, func, select, update

from include.crypto.envelope import new_data_key, unwrap_data_key, wrap_data_key
from include.crypto.keyring import Keyring
from include.vault.db import insert_rows
from include.vault.schema import data_key, keystore_metadata

# Bound parameters per statement stay well under every backend's limit (SQLite 32,766; PostgreSQL 65,535).
CHUNK = 5000


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class KeyStore:
    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self.engine = engine
        self.keyring = keyring

    def create_schema(self) -> None:
        keystore_metadata.create_all(self.engine)

    def create(self, subject_ids: Sequence[str], now: datetime) -> dict[str, bytes]:
        """New data keys for new subjects, stored wrapped under the active KEK."""
        keys = {sid: new_data_key() for sid in subject_ids}
        kek = AESGCM(self.keyring.kek(self.keyring.active_kek))
        version = self.keyring.active_kek
        rows = [(sid, version, wrap_data_key(kek, sid, key), now) for sid, key in keys.items()]
        if rows:
            with self.engine.begin() as conn:
                insert_rows(conn, data_key, ("subject_id", "kek_version", "wrapped", "created_at"), rows)
        return keys

    def fetch(self, subject_ids: Sequence[str]) -> dict[str, bytes]:
        """Unwrapped data keys of those subjects that still have one."""
        found: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for part in chunks(list(subject_ids)):
                for sid, version, wrapped in conn.execute(
                    select(data_key.c.subject_id, data_key.c.kek_version, data_key.c.wrapped)
                    .where(data_key.c.subject_id.in_(part))
                ):
                    found[sid] = unwrap_data_key(self.keyring.kek(version), sid, wrapped)
        return found

    def destroy(self, subject_ids: Sequence[str]) -> int:
        """Crypto-shred: the keys are deleted for good. Idempotent."""
        destroyed = 0
        with self.engine.begin() as conn:
            for part in chunks(list(subject_ids)):
                destroyed += conn.execute(delete(data_key).where(data_key.c.subject_id.in_(part))).rowcount
        return destroyed

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(data_key)).scalar_one()

    def rewrap(self, batch_size: int = CHUNK) -> int:
        """Rewrap every key not under the active KEK; resumable, one transaction per batch."""
        active = self.keyring.active_kek
        new_kek = self.keyring.kek(active)
        rewrapped = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(data_key.c.subject_id, data_key.c.kek_version, data_key.c.wrapped)
                    .where(data_key.c.kek_version != active)
                    .order_by(data_key.c.subject_id).limit(batch_size)
                ).all()
                for sid, version, wrapped in rows:
                    key = unwrap_data_key(self.keyring.kek(version), sid, wrapped)
                    conn.execute(update(data_key).where(data_key.c.subject_id == sid).values(
                        kek_version=active, wrapped=wrap_data_key(new_kek, sid, key)))
            rewrapped += len(rows)
            if len(rows) < batch_size:
                return rewrapped

    def kek_versions_in_use(self) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(data_key.c.kek_version).distinct()).scalars())

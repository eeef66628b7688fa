"""The data-key store: one wrapped data key per data subject, in its own database.

Kept apart from the vault so that a copy of the vault holds ciphertext and no keys: destroying a
subject's key here puts every copy of their records beyond use (crypto-shredding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from include.crypto.envelope import new_data_keys, unwrap_data_key, wrap_data_key, wrap_data_keys
from include.crypto.keyring import Keyring
from include.vault.db import insert_rows
from include.vault.schema import audit_anchor, data_key, key_store_meta, keystore_metadata

# Bound parameters per statement stay well under every backend's limit (SQLite 32,766; PostgreSQL 65,535).
CHUNK = 5000
ACTIVE_KEK = "active_kek"
ANCHOR_ID = 1


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class KeyStore:
    """reload: reads the keyring again, for a process that loaded it before a rotation."""

    def __init__(self, engine: Engine, keyring: Keyring, reload: Callable[[], Keyring] | None = None) -> None:
        self.engine = engine
        self.keyring = keyring
        self.reload = reload

    def create_schema(self) -> None:
        keystore_metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(select(key_store_meta.c.value).where(key_store_meta.c.key == ACTIVE_KEK)).first() is None:
                conn.execute(insert(key_store_meta).values(key=ACTIVE_KEK, value=str(self.keyring.active_kek)))

    def active_version(self, conn: Connection | None = None, *, lock: bool = False) -> int:
        """The KEK version new data keys are wrapped under, as recorded; with lock, held (shared)
        until the caller's transaction ends, so a rotation waits for the wrap to commit."""
        query = select(key_store_meta.c.value).where(key_store_meta.c.key == ACTIVE_KEK)
        if lock:
            query = query.with_for_update(read=True)
        if conn is None:
            with self.engine.connect() as own:
                value = own.execute(query).scalar()
        else:
            value = conn.execute(query).scalar()
        return int(value) if value is not None else self.keyring.active_kek

    def set_active_version(self, version: int) -> None:
        """Record a new active KEK version; waits for wraps under the old one to commit."""
        self.kek(version)
        with self.engine.begin() as conn:
            conn.execute(select(key_store_meta.c.key).where(key_store_meta.c.key == ACTIVE_KEK).with_for_update())
            conn.execute(update(key_store_meta).where(key_store_meta.c.key == ACTIVE_KEK).values(value=str(version)))

    def kek(self, version: int) -> bytes:
        """The KEK of that version; the keyring is read again if it was rotated since it was loaded."""
        if version not in self.keyring.keks and self.reload is not None:
            self.keyring = self.reload()
        return self.keyring.kek(version)

    def current_keyring(self) -> Keyring:
        """The keyring with the recorded active KEK (read again if it was rotated since it was loaded)."""
        return self._keyring_at(self.active_version())

    def _keyring_at(self, version: int) -> Keyring:
        self.kek(version)
        return replace(self.keyring, active_kek=version)

    @contextmanager
    def wrapping(self) -> Iterator[Keyring]:
        """The keyring with the recorded active KEK, held (shared) until the block ends: a rotation
        waits for what the block seals under it to be written, then rewraps it."""
        with self.engine.begin() as conn:
            yield self._keyring_at(self.active_version(conn, lock=True))

    def create(self, subject_ids: Sequence[str], now: datetime) -> dict[str, bytes]:
        """New data keys for new subjects, stored wrapped under the recorded active KEK."""
        keys = dict(zip(subject_ids, new_data_keys(len(subject_ids)), strict=True))
        if keys:
            with self.engine.begin() as conn:
                version = self.active_version(conn, lock=True)
                wrapped = wrap_data_keys(self.kek(version), list(keys.items()))
                rows = [(sid, version, blob, now) for sid, blob in zip(keys, wrapped, strict=True)]
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
                    found[sid] = unwrap_data_key(self.kek(version), sid, wrapped)
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
        active = self.active_version()
        new_kek = self.kek(active)
        rewrapped = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(data_key.c.subject_id, data_key.c.kek_version, data_key.c.wrapped)
                    .where(data_key.c.kek_version != active)
                    .order_by(data_key.c.subject_id).limit(batch_size)
                ).all()
                for sid, version, wrapped in rows:
                    key = unwrap_data_key(self.kek(version), sid, wrapped)
                    conn.execute(update(data_key).where(data_key.c.subject_id == sid).values(
                        kek_version=active, wrapped=wrap_data_key(new_kek, sid, key)))
            rewrapped += len(rows)
            if len(rows) < batch_size:
                return rewrapped

    def kek_versions_in_use(self) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(data_key.c.kek_version).distinct()).scalars())

    # -- the audit anchor: the vault's audit head, kept here too (include/vault/audit.py computes its MAC) --

    def audit_anchor(self) -> Row | None:
        """The anchored head (seq, hash, mac), or None if there is none."""
        with self.engine.connect() as conn:
            return conn.execute(select(audit_anchor.c.seq, audit_anchor.c.hash, audit_anchor.c.mac)
                                .where(audit_anchor.c.id == ANCHOR_ID)).first()

    def raise_audit_anchor(self, seq: int, hash_: str, mac: str) -> bool:
        """Move the anchor up to event seq, or create it; never down, nor to another hash at the same
        seq (concurrent writers commit in any order). True if it was written."""
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    if conn.execute(update(audit_anchor).where(audit_anchor.c.id == ANCHOR_ID, audit_anchor.c.seq < seq)
                                    .values(seq=seq, hash=hash_, mac=mac)).rowcount:
                        return True
                    if conn.execute(select(audit_anchor.c.id).where(audit_anchor.c.id == ANCHOR_ID)).first():
                        return False
                    conn.execute(insert(audit_anchor).values(id=ANCHOR_ID, seq=seq, hash=hash_, mac=mac))
                    return True
            except IntegrityError:  # another writer created it first: compare with theirs
                continue
        return False

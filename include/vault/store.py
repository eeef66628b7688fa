"""The vault: personal fields encrypted under each data subject's own data key.

Every record carries its controller, data category, purpose, source, creation time and retention
end in clear metadata; its personal fields are AES-256-GCM ciphertexts, and identity fields (email,
phone, IP, customer number) also carry a blind index so people are found without decryption.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection, Engine, Row, exists, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError

from include.common.clock import utcnow
from include.common.errors import (
    DataKeyDestroyed,
    InvalidInput,
    KeyringError,
    UnknownRecord,
    VaultError,
    VaultUnavailable,
)
from include.common.settings import VaultSettings
from include.common.urls import display_url
from include.crypto.blind_index import BlindIndexer
from include.crypto.envelope import NONCE_BYTES, FieldCipher
from include.crypto.keyring import Keyring, load_keyring
from include.policies.instructions import REGIONS, Instruction, InstructionBook
from include.vault.audit import AuditLog
from include.vault.db import insert_rows, make_engine
from include.vault.keystore import KeyStore, chunks
from include.vault.schema import (
    KEPT_AFTER_ERASURE,
    controller,
    data_subject,
    instruction,
    key_to_destroy,
    record,
    record_field,
    restriction,
    vault_meta,
    vault_metadata,
)

ROLES = ("prospect", "client", "contact", "customer")
_CIPHER_CACHE_LIMIT = 20_000
_SUBJECT_COLUMNS = ("id", "controller_id", "role", "created_at")
_RECORD_COLUMNS = ("id", "subject_id", "controller_id", "category", "purpose", "source", "created_at",
                   "relates_to", "retention_end", "parent_id", "outcome", "outcome_at")
_FIELD_COLUMNS = ("record_id", "name", "ciphertext", "lookup")


def new_id() -> str:
    """128 bits as hex: 48 bits of milliseconds then 80 random bits.

    Time-ordered ids keep inserts at the right edge of the B-trees (random ids scatter them and
    cost a page read each); the time they give away is the creation time already stored in clear.
    """
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """count fresh ids (see new_id), for a batch, in ascending order: a batch's rows then go into
    its B-trees one after the other instead of at random places within the millisecond's range."""
    prefix = f"{time.time_ns() // 1_000_000:012x}"
    random = os.urandom(10 * count)
    # Sorted as bytes, which order as their hex does, and cheaper to compare.
    return [prefix + part.hex() for part in sorted([random[i:i + 10] for i in range(0, 10 * count, 10)])]


@dataclass(frozen=True)
class NewRecord:
    """A record to store. Without subject_id, its subject is found (or made) by its 'email' field."""

    controller_id: str
    category: str
    purpose: str
    source: str
    fields: Mapping[str, str]
    role: str = "prospect"
    subject_id: str | None = None
    created_at: datetime | None = None
    relates_to: date | None = None
    retention_end: datetime | None = None
    parent_id: str | None = None
    outcome: str | None = None
    outcome_at: datetime | None = None


@dataclass(frozen=True)
class RecordView:
    id: str
    subject_id: str
    controller_id: str
    category: str
    purpose: str
    source: str
    created_at: datetime
    relates_to: date | None
    retention_end: datetime | None
    parent_id: str | None
    outcome: str | None
    outcome_at: datetime | None
    fields: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class Controller:
    id: str
    name: str  # its legal name
    region: str  # one of REGIONS: the bank holidays of its requests' deadlines
    created_at: datetime


def _check_controller(controller_id: str, name: str, region: str) -> None:
    if region not in REGIONS:
        raise InvalidInput(f"controller '{controller_id}': region '{region}' is not one of "
                           f"{', '.join(REGIONS)}")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput(f"controller '{controller_id}': its name is text of 1 to 200 characters")


def _check_metadata(rec: NewRecord, index: int, controllers: set[str]) -> None:
    """A record's controller, category, purpose, source and role."""
    where = f"record #{index}"
    if rec.controller_id not in controllers:
        raise UnknownRecord(f"{where}: controller '{rec.controller_id}' is not registered in the vault")
    for name in ("category", "purpose", "source"):
        value = getattr(rec, name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{where}: '{name}' must be non-empty text")
    if rec.role not in ROLES:
        raise InvalidInput(f"{where}: role '{rec.role}' is not one of {', '.join(ROLES)}")


def _check_fields(rec: NewRecord, index: int, valid_names: set[str]) -> None:
    """A record's fields; valid_names holds the field names already found valid, and takes new ones."""
    if not rec.fields:
        raise InvalidInput(f"record #{index}: has no fields")
    for name, value in rec.fields.items():
        if name not in valid_names:
            if not isinstance(name, str) or not name or len(name) > 64:
                raise InvalidInput(f"record #{index}: field names must be text of 1 to 64 characters")
            valid_names.add(name)
        if not isinstance(value, str):
            raise InvalidInput(f"record #{index}: field '{name}' must be text, got {type(value).__name__}")
    if rec.subject_id is None and "email" not in rec.fields:
        raise InvalidInput(f"record #{index}: no subject_id and no 'email' field to find its data subject by")


def lock_subjects(conn: Connection, subject_ids: Sequence[str]) -> set[str]:
    """Lock the subjects' rows until the caller's transaction ends, in id order (two transactions
    locking the same subjects never wait on each other in a circle); returns those not erased, as
    the latest commit left them. SQLite needs no row lock: a write transaction holds the database."""
    live: set[str] = set()
    for part in chunks(sorted(set(subject_ids))):
        rows = conn.execute(select(data_subject.c.id, data_subject.c.erased_at).where(data_subject.c.id.in_(part))
                            .order_by(data_subject.c.id).with_for_update()).all()
        live.update(sid for sid, erased_at in rows if erased_at is None)
    return live


class Vault:
    def __init__(self, engine: Engine, keystore: KeyStore, keyring: Keyring, *,
                 location: str = "vault") -> None:
        self.engine = engine
        self.keystore = keystore
        self.keyring = keyring
        self.location = location
        self.audit = AuditLog(keyring, anchor=keystore)  # the anchor is kept in the key store
        self.indexer = BlindIndexer(keyring)
        self._ciphers: dict[str, FieldCipher] = {}

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: VaultSettings, *, create: bool = False) -> Vault:
        """Open the vault; with create, make its schema first (idempotent).

        The keyring is loaded and checked against the vault before anything is written, so a wrong
        or missing keyring fails with a KeyringError and leaves the stores as they were.
        """
        def read_keyring() -> Keyring:
            if settings.keyring_secret:
                return Keyring.from_json(settings.keyring_secret, "the configured keyring secret")
            return load_keyring(settings.keyring_path)
        keyring = read_keyring()
        assert settings.keystore_url is not None  # VaultSettings puts it beside the keyring when not given
        vault = cls(make_engine(settings.vault_url),
                    KeyStore(make_engine(settings.keystore_url, secure_delete=True), keyring, read_keyring),
                    keyring, location=display_url(settings.vault_url))
        try:
            if create:
                vault.create_schema()
            vault.check_keyring()
        except DBAPIError as exc:
            vault.dispose()
            raise VaultUnavailable(f"vault database or key store unreachable ({vault.location}): "
                             f"{type(exc.orig).__name__}") from exc
        except BaseException:
            vault.dispose()
            raise
        return vault

    def dispose(self) -> None:
        self._ciphers.clear()
        self.engine.dispose()
        self.keystore.engine.dispose()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc) -> None:
        self.dispose()

    def _bound_fingerprint(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(vault_meta.c.value)
                                .where(vault_meta.c.key == "keyring_fingerprint")).scalar()

    def create_schema(self) -> None:
        if inspect(self.engine).has_table(vault_meta.name):
            self.check_keyring()  # refuse before creating anything with a foreign keyring
        vault_metadata.create_all(self.engine)
        self.keystore.create_schema()
        with self.engine.begin() as conn:
            bound = conn.execute(select(vault_meta.c.value)
                                 .where(vault_meta.c.key == "keyring_fingerprint")).scalar()
            if bound is None:
                conn.execute(insert(vault_meta).values(key="keyring_fingerprint",
                                                       value=self.keyring.fingerprint))
            self.audit.initialise(conn)

    def check_keyring(self) -> None:
        if not inspect(self.engine).has_table(vault_meta.name):
            raise VaultError(f"the vault at {self.location} has no schema: run `gdpr-admin vault init`")
        bound = self._bound_fingerprint()
        if bound is not None and bound != self.keyring.fingerprint:
            raise KeyringError(
                f"keyring at {self.keyring.location} (fingerprint {self.keyring.fingerprint}) is not "
                f"the keyring of the vault at {self.location} (fingerprint {bound})"
            )

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(vault_meta.c.value).where(vault_meta.c.key == key)).scalar()

    def set_meta(self, conn, key: str, value: str) -> None:
        if conn.execute(select(vault_meta.c.key).where(vault_meta.c.key == key)).first():
            conn.execute(update(vault_meta).where(vault_meta.c.key == key).values(value=value))
        else:
            conn.execute(insert(vault_meta).values(key=key, value=value))

    # -- controllers ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's transaction if it gives one (to commit with its other writes), else a new one."""
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as own:
                yield own

    def add_controller(self, controller_id: str, name: str, region: str, *, actor: str,
                       at: datetime | None = None, conn: Connection | None = None) -> bool:
        """Register a controller; False if it already was (idempotent: its name and region are then
        left as they are, see change_controller). conn: the caller's transaction, if any."""
        _check_controller(controller_id, name, region)
        at = at or utcnow()
        with self._transaction(conn) as conn:
            if conn.execute(select(controller.c.id).where(controller.c.id == controller_id)).first():
                return False
            conn.execute(insert(controller).values(id=controller_id, name=name, region=region,
                                                   created_at=at))
            self.audit.append(conn, at=at, actor=actor, action="controller.registered",
                              controller_id=controller_id, details={"region": region})
        return True

    def change_controller(self, controller_id: str, *, name: str, region: str, actor: str,
                          at: datetime | None = None, conn: Connection | None = None) -> list[str]:
        """Record a registered controller's new legal name or region, audited as controller.changed
        with the fields changed (and the regions: they move request deadlines from now on). Returns
        the fields changed; none when both are as recorded, and then nothing is written."""
        _check_controller(controller_id, name, region)
        with self._transaction(conn) as conn:
            row = conn.execute(select(controller.c.name, controller.c.region)
                               .where(controller.c.id == controller_id).with_for_update()).first()
            if row is None:
                raise UnknownRecord(f"controller '{controller_id}' is not registered in the vault")
            changed = [f for f, old, new in (("name", row.name, name), ("region", row.region, region))
                       if old != new]
            if changed:
                conn.execute(update(controller).where(controller.c.id == controller_id)
                             .values(name=name, region=region))
                details: dict = {"fields": changed}
                if "region" in changed:
                    details.update(region_was=row.region, region=region)
                self.audit.append(conn, at=at or utcnow(), actor=actor, action="controller.changed",
                                  controller_id=controller_id, details=details)
        return changed

    def controllers(self) -> list[Controller]:
        """The registered controllers, by id."""
        with self.engine.connect() as conn:
            return [Controller(r.id, r.name, r.region, r.created_at)
                    for r in conn.execute(select(controller).order_by(controller.c.id))]

    def controller_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(controller.c.id).order_by(controller.c.id)).scalars())

    def instruction_book(self) -> InstructionBook:
        """Every instruction recorded (include/vault/instructions.py records them)."""
        with self.engine.connect() as conn:
            return InstructionBook(Instruction.from_row(r) for r in conn.execute(select(instruction)))

    # -- keys ----------------------------------------------------------------------------------

    def ciphers(self, subject_ids: Sequence[str]) -> dict[str, FieldCipher]:
        """Field ciphers of live subjects; DataKeyDestroyed names any whose key is gone."""
        wanted = dict.fromkeys(subject_ids)
        found = {sid: self._ciphers[sid] for sid in wanted if sid in self._ciphers}
        missing = [sid for sid in wanted if sid not in found]
        if missing:
            keys = self.keystore.fetch(missing)
            gone = [sid for sid in missing if sid not in keys]
            if gone:
                raise DataKeyDestroyed(f"the data key of subject {gone[0]} is destroyed"
                                       + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""))
            found.update(self._cache_keys(keys))
        return found

    def _cache_keys(self, keys: dict[str, bytes]) -> dict[str, FieldCipher]:
        """Ciphers for the keys, kept for reuse in a bounded cache (a bulk ingest must not hold
        every key in memory)."""
        made = {sid: FieldCipher(key) for sid, key in keys.items()}
        if len(self._ciphers) + len(made) > _CIPHER_CACHE_LIMIT:
            self._ciphers.clear()
        self._ciphers.update(made)
        return made

    def shred(self, subject_ids: Sequence[str]) -> int:
        """Destroy the subjects' data keys: their ciphertext, in every copy, is unreadable."""
        for sid in subject_ids:
            self._ciphers.pop(sid, None)
        return self.keystore.destroy(subject_ids)

    def destroy_pending_keys(self, subject_ids: Sequence[str] | None = None) -> int:
        """Destroy the keys of erased subjects whose deletion has committed (those given, or every
        one a killed run left), while they still have no records; returns how many."""
        with self.engine.connect() as conn:
            query = select(key_to_destroy.c.subject_id).where(~exists().where(
                record.c.subject_id == key_to_destroy.c.subject_id))
            pending = (list(conn.execute(query).scalars()) if subject_ids is None else
                       [sid for part in chunks(list(subject_ids)) for sid in conn.execute(
                           query.where(key_to_destroy.c.subject_id.in_(part))).scalars()])
        if not pending:
            return 0
        destroyed = self.shred(pending)
        with self.engine.begin() as conn:
            for part in chunks(pending):
                conn.execute(key_to_destroy.delete().where(key_to_destroy.c.subject_id.in_(part)))
        return destroyed

    # -- writing -------------------------------------------------------------------------------

    def add_records(self, records: Sequence[NewRecord], *, actor: str,
                    batch_size: int = 10_000) -> list[str]:
        """Encrypt and store records, in one transaction per batch. Returns their ids in order.

        Each record's category must be covered by an instruction of its controller in effect now
        (Art. 28(3)(a)); a record given no retention end gets the one that instruction's rule sets.
        """
        controllers = set(self.controller_ids())
        book = self.instruction_book()
        now = utcnow()
        # Records of a batch mostly share their metadata and dates: each distinct metadata is
        # checked, and each distinct retention end computed, once.
        rules: dict[tuple, Instruction] = {}
        known_ends: dict[tuple, datetime | None] = {}
        field_names: set[str] = set()
        ends: list[datetime | None] = []
        for index, rec in enumerate(records):
            metadata = (rec.controller_id, rec.category, rec.purpose, rec.source, rec.role)
            try:
                rule = rules.get(metadata)
            except TypeError:  # unhashable, so not text: the check names it
                rule = None
            if rule is None:
                _check_metadata(rec, index, controllers)
            _check_fields(rec, index, field_names)
            if rule is None:
                rule = rules[metadata] = book.require(rec.controller_id, rec.category, now,
                                                      where=f"record #{index}: ")
            if rec.retention_end:
                ends.append(rec.retention_end)
                continue
            dates = (metadata, rec.created_at, rec.relates_to, rec.outcome_at)
            try:
                end = known_ends[dates]
            except KeyError:
                end = known_ends[dates] = rule.retention.end(
                    created_at=rec.created_at or now, relates_to=rec.relates_to,
                    outcome_at=rec.outcome_at, year_end=rule.year_end)
            ends.append(end)
        ids: list[str] = []
        for start in range(0, len(records), batch_size):
            ids.extend(self._add_batch(records[start:start + batch_size], ends[start:start + batch_size],
                                       start, actor))
        return ids

    def _resolve_subjects(self, conn, batch: Sequence[NewRecord],
                          offset: int) -> tuple[list[str], dict, list[str | None]]:
        """Subject id per record (given, found by email blind index, or new), the new subjects,
        and each record's email digest for reuse."""
        by_digest: dict[str, str] = {}
        digests = [None if rec.subject_id else
                   self._digest(rec.controller_id, "email", rec.fields["email"], offset + i)
                   for i, rec in enumerate(batch)]
        wanted = sorted({d for d in digests if d})
        # An erased subject, or one holding records kept after an erasure (restricted to storage),
        # takes nothing new: the person's new record starts a new subject.
        kept = exists().where(restriction.c.subject_id == record.c.subject_id, restriction.c.lifted_at.is_(None),
                              restriction.c.grounds == KEPT_AFTER_ERASURE)
        for part in chunks(wanted):
            for digest, sid in conn.execute(
                select(record_field.c.lookup, record.c.subject_id)
                .join(record, record.c.id == record_field.c.record_id)
                .join(data_subject, data_subject.c.id == record.c.subject_id)
                .where(record_field.c.name == "email", record_field.c.lookup.in_(part),
                       data_subject.c.erased_at.is_(None), ~kept)
                .order_by(record.c.subject_id)
            ):
                by_digest.setdefault(digest, sid)
        new_subjects: dict[str, NewRecord] = {}
        subject_ids = []
        fresh = iter(new_ids(len(batch)))
        for rec, digest in zip(batch, digests, strict=True):
            if rec.subject_id:
                sid = rec.subject_id
            else:
                assert digest is not None  # every record that names no subject has one (above)
                if digest in by_digest:
                    sid = by_digest[digest]
                else:
                    sid = by_digest[digest] = next(fresh)
                    new_subjects[sid] = rec
            subject_ids.append(sid)
        return subject_ids, new_subjects, digests

    def _digest(self, controller_id: str, name: str, value: str, index: int) -> str:
        try:
            return self.indexer.digest(name, controller_id, value)
        except InvalidInput as exc:
            raise InvalidInput(f"record #{index}: {exc}") from None

    def _add_batch(self, batch: Sequence[NewRecord], ends: Sequence[datetime | None], offset: int,
                   actor: str) -> list[str]:
        now = utcnow()
        with self.engine.begin() as conn:
            subject_ids, new_subjects, email_digests = self._resolve_subjects(conn, batch, offset)
            known = [sid for sid in dict.fromkeys(subject_ids) if sid not in new_subjects]
            # Held until the commit: a deletion of the subject's last records waits, or is waited for.
            live = lock_subjects(conn, known)
            if gone := [sid for sid in known if sid not in live]:
                if given := [rec.subject_id for rec in batch if rec.subject_id in gone]:
                    raise UnknownRecord(f"data subject {given[0]} does not exist or was erased")
                fresh: dict[str, str] = {}  # erased since it was looked up: a new subject per email
                for i, sid in enumerate(subject_ids):
                    if sid in gone:
                        digest = email_digests[i]
                        assert digest is not None  # found by its email: a given subject that is gone raised above
                        if digest not in fresh:
                            fresh[digest] = new_ids(1)[0]
                            new_subjects[fresh[digest]] = batch[i]
                        subject_ids[i] = fresh[digest]
            # New keys are committed first: a failure below leaves unused keys, never keyless data.
            ciphers = self._cache_keys(self.keystore.create(list(new_subjects), now))
            ciphers.update(self.ciphers([sid for sid in known if sid in live]))
            subject_rows = [(sid, rec.controller_id, rec.role, rec.created_at or now)
                            for sid, rec in new_subjects.items()]
            record_rows: list[tuple] = []
            field_rows: list[tuple] = []
            ids = new_ids(len(batch))
            indexed = self.indexer.indexed
            nonces = os.urandom(NONCE_BYTES * sum(len(rec.fields) for rec in batch))
            start = 0
            for i, (rec, sid, rid, end, email_digest) in enumerate(zip(batch, subject_ids, ids, ends, email_digests,
                                                                       strict=True)):
                record_rows.append((rid, sid, rec.controller_id, rec.category, rec.purpose, rec.source,
                                    rec.created_at or now, rec.relates_to, end,
                                    rec.parent_id, rec.outcome, rec.outcome_at))
                fields = rec.fields
                stop = start + NONCE_BYTES * len(fields)
                blobs = ciphers[sid].encrypt_fields(rid, fields, nonces[start:stop])
                start = stop
                for (name, value), blob in zip(fields.items(), blobs, strict=True):
                    if not indexed(name):
                        lookup = None
                    elif name == "email" and email_digest:
                        lookup = email_digest
                    else:
                        lookup = self._digest(rec.controller_id, name, value, offset + i)
                    field_rows.append((rid, name, blob, lookup))
            insert_rows(conn, data_subject, _SUBJECT_COLUMNS, subject_rows)
            promoted = {sid: rec.role for rec, sid in zip(batch, subject_ids, strict=True)
                        if rec.role != "prospect" and sid not in new_subjects}
            for sid, role in promoted.items():
                # A prospect who becomes a client or contact is never purged as a prospect again.
                conn.execute(update(data_subject).where(data_subject.c.id == sid,
                                                        data_subject.c.role == "prospect")
                             .values(role=role))
            insert_rows(conn, record, _RECORD_COLUMNS, record_rows)
            insert_rows(conn, record_field, _FIELD_COLUMNS, field_rows)
            per_controller: dict[str, int] = {}
            for rec in batch:
                per_controller[rec.controller_id] = per_controller.get(rec.controller_id, 0) + 1
            for controller_id, count in sorted(per_controller.items()):
                self.audit.append(conn, at=now, actor=actor, action="vault.records_added",
                                  controller_id=controller_id,
                                  details={"records": count, "new_subjects": sum(
                                      1 for r in new_subjects.values() if r.controller_id == controller_id)})
        return ids

    # -- reading -------------------------------------------------------------------------------

    def read_records(self, record_ids: Sequence[str]) -> list[RecordView]:
        """Decrypt records; UnknownRecord for a missing id, DataKeyDestroyed for a shredded subject."""
        rows: dict[str, Row] = {}
        fields: dict[str, dict[str, bytes]] = {rid: {} for rid in record_ids}
        with self.engine.connect() as conn:
            for part in chunks(list(record_ids)):
                rows.update({r.id: r for r in conn.execute(select(record).where(record.c.id.in_(part)))})
                for rid, name, blob in conn.execute(
                    select(record_field.c.record_id, record_field.c.name, record_field.c.ciphertext)
                    .where(record_field.c.record_id.in_(part))
                ):
                    fields[rid][name] = blob
        if missing := [rid for rid in record_ids if rid not in rows]:
            raise UnknownRecord(f"record {missing[0]} does not exist"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        ciphers = self.ciphers([rows[rid].subject_id for rid in record_ids])
        views = []
        for rid in record_ids:
            row = rows[rid]
            cipher = ciphers[row.subject_id]
            views.append(RecordView(
                id=row.id, subject_id=row.subject_id, controller_id=row.controller_id,
                category=row.category, purpose=row.purpose, source=row.source,
                created_at=row.created_at, relates_to=row.relates_to,
                retention_end=row.retention_end, parent_id=row.parent_id, outcome=row.outcome,
                outcome_at=row.outcome_at,
                fields={name: cipher.decrypt(rid, name, blob) for name, blob in fields[rid].items()}))
        return views

    def read_record(self, record_id: str) -> RecordView:
        return self.read_records([record_id])[0]

    def find_records(self, controller_id: str, field_name: str, value: str) -> list[str]:
        """Record ids whose identity field equals value (after normalising), by blind index."""
        digest = self.indexer.digest(field_name, controller_id, value)
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(record_field.c.record_id)
                .join(record, record.c.id == record_field.c.record_id)
                .where(record_field.c.name == field_name, record_field.c.lookup == digest,
                       record.c.controller_id == controller_id)
                .order_by(record_field.c.record_id)).scalars())

    def find_subjects(self, controller_id: str, field_name: str, value: str) -> list[str]:
        digest = self.indexer.digest(field_name, controller_id, value)
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(record.c.subject_id).distinct()
                .join(record_field, record.c.id == record_field.c.record_id)
                .where(record_field.c.name == field_name, record_field.c.lookup == digest,
                       record.c.controller_id == controller_id)
                .order_by(record.c.subject_id)).scalars())

    def subject_record_ids(self, subject_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(record.c.id).where(record.c.subject_id == subject_id)
                                     .order_by(record.c.id)).scalars())

    def record_event(self, action: str, *, actor: str, at: datetime, controller_id: str | None = None,
                     details: dict | None = None) -> None:
        """Audit, in a transaction of its own, something done outside the vault."""
        with self.engine.begin() as conn:
            self.audit.append(conn, at=at, actor=actor, action=action, controller_id=controller_id, details=details)

    def counts(self) -> dict[str, int]:
        """Sizes of the stores, for reports and tests: records, live subjects, data keys."""
        with self.engine.connect() as conn:
            records = conn.execute(select(func.count()).select_from(record)).scalar_one()
            live = conn.execute(select(func.count()).select_from(data_subject)
                                .where(data_subject.c.erased_at.is_(None))).scalar_one()
        return {"records": records, "live_subjects": live, "data_keys": self.keystore.count()}


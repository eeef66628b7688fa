"""The agency's own encrypted vault, as a store: searched by blind index only, never by decryption.

A data subject is an owner. The subjects an identity of the request leads to are the person's,
unless the subject holds another email or customer number (someone else who gave the same phone).
Identities found in the person's records (a phone on their enquiry) are checked the same way
before use: a value another subject holds too is shared, and that subject is held back as a
possible match, never packaged or erased.

Erasure: a subject's records go, except those kept under a legal reason (a legal hold, or a legal
obligation such as the 7-year accounting rule while it runs). With nothing kept the data key is
destroyed (crypto-shredding: every backup copy is beyond use too). With records kept, they are
re-encrypted under a new data key of a new, restricted subject, and the old key is destroyed, so
that the erased records' copies in backups are unreadable all the same. Rectification: the new
value is encrypted under the subject's key with a new blind index; an old email on the suppression
list carries its suppression over to the new one.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import insert, select, text, update

from include.common.database import database_errors
from include.stores.base import Acting, Done, FoundRecord, Kept, Outcome, Plan, PossibleMatch, Store, StoreResult
from include.stores.identities import SEARCHED_KINDS, STRONG_KINDS, IdentitySet, Standing, another_person
from include.vault.deletion import delete_records
from include.vault.holds import held
from include.vault.keystore import chunks
from include.vault.restriction import require_unrestricted, restrict
from include.vault.schema import KEPT_AFTER_ERASURE, data_subject, record, record_field
from include.vault.store import Vault
from include.vault.suppression import is_suppressed, suppress

VAULT_STORE = "vault"
LEGAL_HOLD = "Art. 17(3)(e): kept under a legal hold, for legal claims"


def retained_subject_id(subject_id: str) -> str:
    """The subject that takes over a subject's kept records (the same on every retry)."""
    return hashlib.sha256(f"retained:{subject_id}".encode()).hexdigest()[:32]


class SubjectErasure(Plan):
    subject_id: str
    delete: list[str]
    kept: list[Kept]
    kept_by: str | None


class VaultErasurePlan(Plan):
    subjects: list[SubjectErasure]
    identities: list[dict]  # as the search judged them, for the server logs
    held: list[PossibleMatch]


class VaultRectificationPlan(Plan):
    fields: list[tuple[str, str]]  # (record id, field name)
    suppressed: bool  # the old email is on the suppression list: the new one goes on it too
    held: list[PossibleMatch]


class VaultStore(Store[VaultErasurePlan, VaultRectificationPlan]):
    id = VAULT_STORE
    kind = "vault"
    erasure_plan_type = VaultErasurePlan
    rectification_plan_type = VaultRectificationPlan

    def __init__(self, vault: Vault, controller_id: str) -> None:
        self.vault = vault
        self.controller_id = controller_id

    def test_connection(self) -> None:
        with database_errors("the vault", "reached"), self.vault.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- searching -----------------------------------------------------------------------------

    def resolve(self, identities: IdentitySet) -> tuple[dict[str, str], dict[str, str], IdentitySet]:
        """({subject: how it was found}, {subject held back: why}, the identities as left)."""
        known = IdentitySet()
        known.merge(identities)
        mine: dict[str, str] = {}
        withheld: dict[str, str] = {}
        judged: set[tuple[str, str]] = set()
        with database_errors("the vault", "searched"):
            while pending := sorted((e for e in known.entries.values() if (e.kind, e.value) not in judged and
                                     e.standing in (Standing.given, Standing.confirmed, Standing.candidate)),
                                    key=lambda e: (e.standing != Standing.given, e.kind != "email", e.value)):
                for entry in pending:
                    judged.add((entry.kind, entry.value))
                    strong = {(k, self._digest(k, v)) for k, v in known.strong()}
                    if entry.kind in STRONG_KINDS:
                        strong.add((entry.kind, self._digest(entry.kind, entry.value)))
                    found = self.vault.find_subjects(self.controller_id, entry.kind, entry.value)
                    others = {s: another_person(self._strong(s), strong) for s in found if s not in mine}
                    if entry.standing == Standing.candidate:
                        if entry.kind == "ip" and others or any(others.values()):
                            entry.standing = Standing.shared
                            for subject in others:
                                withheld.setdefault(subject, f"reached only through a {entry.kind.replace('_', ' ')} "
                                                             "that another data subject also holds")
                            continue
                        entry.standing = Standing.confirmed
                    if entry.kind == "ip":
                        continue
                    for subject, conflict in others.items():
                        if conflict:
                            withheld.setdefault(subject, f"holds the request's {entry.kind.replace('_', ' ')}, but "
                                                         "also another email or customer number")
                        else:
                            mine[subject] = known.describe(entry.kind, entry.value)
                            withheld.pop(subject, None)
                            self._derive(subject, known)
        return mine, withheld, known

    def _digest(self, kind: str, value: str) -> str:
        return self.vault.indexer.digest(kind, self.controller_id, value)

    def _strong(self, subject_id: str) -> set[tuple[str, str]]:
        """(kind, blind index) of the emails and customer numbers in a subject's records."""
        with self.vault.engine.connect() as conn:
            return {(name, lookup) for name, lookup in conn.execute(
                select(record_field.c.name, record_field.c.lookup).join(record, record.c.id == record_field.c.record_id)
                .where(record.c.subject_id == subject_id, record_field.c.name.in_(STRONG_KINDS)))}

    def _derive(self, subject_id: str, known: IdentitySet) -> None:
        for view in self.vault.read_records(self.vault.subject_record_ids(subject_id)):
            for kind in (*SEARCHED_KINDS, "ip"):
                if kind in view.fields:
                    known.add(kind, view.fields[kind], f"vault {view.category} {view.id}")

    def subjects(self, identities: IdentitySet) -> list[str]:
        """The person's subjects: the owners the identities lead to, none of anyone else's."""
        return sorted(self.resolve(identities)[0])

    def possible_matches(self, withheld: dict[str, str]) -> list[PossibleMatch]:
        return [PossibleMatch(self.id, "data subject", subject, reason) for subject, reason in sorted(withheld.items())]

    def search(self, identities: IdentitySet) -> StoreResult:
        mine, withheld, known = self.resolve(identities)
        result = StoreResult(self.id, self.kind, identities=known, held=self.possible_matches(withheld))
        with database_errors("the vault", "searched"):
            for subject_id, found_by in sorted(mine.items()):
                for view in self.vault.read_records(self.vault.subject_record_ids(subject_id)):
                    data = {"category": view.category, "purpose": view.purpose, "source": view.source,
                            "created_at": view.created_at.isoformat(),
                            "retention_end": view.retention_end.isoformat() if view.retention_end else None,
                            **view.fields}
                    result.records.append(FoundRecord(self.id, view.category, view.id, data, found_by,
                                                      instruction=view.category))
        return result

    # -- erasure -------------------------------------------------------------------------------

    def plan_erasure(self, identities: IdentitySet, acting: Acting) -> VaultErasurePlan:
        mine, withheld, known = self.resolve(identities)
        subjects = []
        with self.vault.engine.connect() as conn:
            for subject_id in sorted(mine):
                rows = conn.execute(select(record.c.id, record.c.category, record.c.retention_end,
                                           held(record, acting.at).label("held"))
                                    .where(record.c.subject_id == subject_id).order_by(record.c.id)).all()
                deleted, kept = [], []
                for row in rows:
                    instruction = acting.instructions().in_effect(acting.controller_id, row.category, acting.at)
                    if row.held:
                        reason = LEGAL_HOLD
                    elif (instruction and instruction.legal_basis == "legal_obligation"
                          and (row.retention_end is None or row.retention_end > acting.at)):
                        reason = f"Art. 17(3)(b): kept for a legal obligation, {instruction.purpose}"
                    else:
                        deleted.append(row.id)
                        continue
                    kept.append(Kept(table=row.category, key=row.id, reason=reason,
                                     until=row.retention_end.isoformat() if row.retention_end else None))
                kept_by = None if not kept else subject_id if not deleted else retained_subject_id(subject_id)
                subjects.append(SubjectErasure(subject_id=subject_id, delete=deleted, kept=kept, kept_by=kept_by))
        return VaultErasurePlan(subjects=subjects, identities=known.to_json(), held=self.possible_matches(withheld))

    def apply_erasure(self, plan: VaultErasurePlan, acting: Acting) -> Outcome:
        vault = self.vault
        deleted = shredded = 0
        for subject in plan.subjects:
            subject_id, kept_by = subject.subject_id, subject.kept_by
            if kept_by not in (None, subject_id):
                self._move_kept_records(subject_id, kept_by, [k.key for k in subject.kept], acting)
            with vault.engine.begin() as conn:
                gone = delete_records(conn, subject.delete, at=acting.at, subject_ids=[subject_id])
                deleted += gone.records
                if kept_by:
                    restrict(vault, conn, controller_id=acting.controller_id, subject_id=kept_by,
                             grounds=KEPT_AFTER_ERASURE, request_id=acting.request_id, actor=acting.actor,
                             at=acting.at)
                vault.audit.append(conn, at=acting.at, actor=acting.actor, action="erasure.vault",
                                   controller_id=acting.controller_id, subject_id=subject_id, details={
                                       "request": acting.request_id, "deleted": gone.records,
                                       "kept": len(subject.kept), "kept_by": kept_by})
            # After the commit, and only for a subject left with no records: kept records, and any
            # written meanwhile, are never left under a destroyed key; a retry of a task killed in
            # between destroys it then.
            shredded += vault.destroy_pending_keys([subject_id])
        return Outcome(done=[Done(table="records", action="delete", records=deleted),
                             Done(table="data keys", action="destroy", records=shredded)],
                       kept=[kept for subject in plan.subjects for kept in subject.kept], held=plan.held)

    def _move_kept_records(self, subject_id: str, kept_by: str, record_ids: list[str], acting: Acting) -> None:
        """Re-encrypt the kept records under kept_by's new data key (idempotent)."""
        vault = self.vault
        if not vault.keystore.fetch([kept_by]):
            vault.keystore.create([kept_by], acting.at)
        with vault.engine.begin() as conn:
            moving = [rid for part in chunks(record_ids) for rid in conn.execute(
                select(record.c.id).where(record.c.id.in_(part), record.c.subject_id == subject_id)).scalars()]
            if not moving:
                return
            if not conn.execute(select(data_subject.c.id).where(data_subject.c.id == kept_by)).first():
                role, controller_id = conn.execute(select(data_subject.c.role, data_subject.c.controller_id)
                                                   .where(data_subject.c.id == subject_id)).one()
                conn.execute(insert(data_subject).values(id=kept_by, controller_id=controller_id, role=role,
                                                         created_at=acting.at))
            ciphers = vault.ciphers([subject_id, kept_by])
            old, new = ciphers[subject_id], ciphers[kept_by]
            for part in chunks(moving):
                for rid, name, blob in conn.execute(select(record_field.c.record_id, record_field.c.name,
                                                           record_field.c.ciphertext)
                                                    .where(record_field.c.record_id.in_(part))).all():
                    conn.execute(update(record_field)
                                 .where(record_field.c.record_id == rid, record_field.c.name == name)
                                 .values(ciphertext=new.encrypt(rid, name, old.decrypt(rid, name, blob))))
                conn.execute(update(record).where(record.c.id.in_(part)).values(subject_id=kept_by))

    # -- rectification -------------------------------------------------------------------------

    def plan_rectification(self, identities: IdentitySet, old: dict[str, str],
                           acting: Acting) -> VaultRectificationPlan:
        """Restricted (audited) if a subject found is restricted."""
        mine, withheld, _ = self.resolve(identities)
        subjects = sorted(mine)
        require_unrestricted(self.vault, controller_id=acting.controller_id, subject_ids=subjects,
                             operation="rectification", actor=acting.actor, at=acting.at)
        fields = []
        with self.vault.engine.connect() as conn:
            for part in chunks(subjects):
                for rid, name, lookup in conn.execute(
                        select(record_field.c.record_id, record_field.c.name, record_field.c.lookup)
                        .join(record, record.c.id == record_field.c.record_id)
                        .where(record.c.subject_id.in_(part), record_field.c.name.in_(list(old)))
                        .order_by(record_field.c.record_id)):
                    if lookup == self._digest(name, old[name]):
                        fields.append((rid, name))
        suppressed = "email" in old and is_suppressed(self.vault, acting.controller_id, old["email"])
        return VaultRectificationPlan(fields=fields, suppressed=suppressed, held=self.possible_matches(withheld))

    def apply_rectification(self, plan: VaultRectificationPlan, new: dict[str, str], acting: Acting) -> Outcome:
        vault, controller_id = self.vault, acting.controller_id
        with vault.engine.begin() as conn:
            subjects = dict(conn.execute(select(record.c.id, record.c.subject_id).where(
                record.c.id.in_([rid for rid, _ in plan.fields]))).all()) if plan.fields else {}
            ciphers = vault.ciphers(list(dict.fromkeys(subjects.values())))
            for rid, name in plan.fields:
                conn.execute(update(record_field).where(record_field.c.record_id == rid, record_field.c.name == name)
                             .values(ciphertext=ciphers[subjects[rid]].encrypt(rid, name, new[name]),
                                     lookup=self._digest(name, new[name])))
            vault.audit.append(conn, at=acting.at, actor=acting.actor, action="rectification.vault",
                               controller_id=controller_id, details={"request": acting.request_id,
                                                                     "fields": len(plan.fields), "kinds": sorted(new)})
        if plan.suppressed and "email" in new:
            suppress(vault, controller_id=controller_id, email=new["email"], actor=acting.actor, at=acting.at,
                     request_id=acting.request_id)
        return Outcome(done=[Done(table="records", action="rectify", records=len({rid for rid, _ in plan.fields}))],
                       held=plan.held)

"""Restriction of processing (Art. 18): a restricted subject's data is stored and nothing else.

Every operation other than storage (a marketing export, a disclosure, a rectification, processing
unrelated to the person's own requests) asks `require_unrestricted` first, which refuses with a
Restricted error and audits the refusal. A restriction is lifted only once the person has been
told (Art. 18(3)), and the day they were told is recorded.

Restrictions do not stop deletion at the end of a retention period: storage limitation still
applies. Data that must outlive its period for legal claims is kept by a legal hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Connection, insert, select, update

from include.common.errors import InvalidInput, Restricted, UnknownRecord
from include.vault.keystore import chunks
from include.vault.schema import KEPT_AFTER_ERASURE, data_subject, restriction
from include.vault.store import Vault, new_id

# Why data is restricted, as code words (the audit log holds no free text), and what they mean.
GROUNDS = {
    "person_asked": "the person asked for restriction (Art. 18(1))",
    "objection_pending": "an objection awaits the controller's decision (Art. 18(1)(d))",
    KEPT_AFTER_ERASURE: "kept under a legal reason after an erasure request: storage only (Art. 17(3), 18)",
}


def restrict(vault: Vault, conn: Connection, *, controller_id: str, subject_id: str, grounds: str, actor: str,
             at: datetime, request_id: str | None = None) -> str:
    """Restrict a subject's data in the caller's transaction (grounds: one of GROUNDS); an active
    restriction on the same grounds is kept (idempotent). Returns the restriction's id."""
    if grounds not in GROUNDS:
        raise InvalidInput(f"a restriction's grounds are one of {', '.join(GROUNDS)}, not {grounds!r}")
    if not conn.execute(select(data_subject.c.id).where(data_subject.c.id == subject_id,
                                                        data_subject.c.controller_id == controller_id)).first():
        raise UnknownRecord(f"data subject {subject_id} is not one of controller '{controller_id}'")
    existing = conn.execute(select(restriction.c.id).where(
        restriction.c.subject_id == subject_id, restriction.c.grounds == grounds,
        restriction.c.lifted_at.is_(None))).scalar()
    if existing:
        return existing
    restriction_id = new_id()
    conn.execute(insert(restriction).values(id=restriction_id, controller_id=controller_id, subject_id=subject_id,
                                            grounds=grounds, request_id=request_id, placed_by=actor, placed_at=at))
    vault.audit.append(conn, at=at, actor=actor, action="restriction.placed", controller_id=controller_id,
                       subject_id=subject_id, details={"restriction": restriction_id, "grounds": grounds,
                                                       "request": request_id})
    return restriction_id


def lift_restrictions(vault: Vault, *, controller_id: str, subject_id: str, person_told_on: date | None,
                      actor: str, at: datetime, request_id: str | None = None) -> int:
    """Lift every active restriction of the subject; refused unless the person was told first.
    Returns how many were lifted (0 when none was active)."""
    if person_told_on is None:
        raise InvalidInput("a restriction is lifted only after the person has been told (Art. 18(3)): "
                           "give the day they were told")
    if person_told_on > at.date():
        raise InvalidInput(f"the person cannot have been told on {person_told_on}, after the lifting on {at.date()}")
    with vault.engine.begin() as conn:
        active = list(conn.execute(select(restriction.c.id).where(
            restriction.c.subject_id == subject_id, restriction.c.controller_id == controller_id,
            restriction.c.lifted_at.is_(None)).order_by(restriction.c.id)).scalars())
        for restriction_id in active:
            conn.execute(update(restriction).where(restriction.c.id == restriction_id).values(
                lifted_at=at, lifted_by=actor, person_told_on=person_told_on))
            vault.audit.append(conn, at=at, actor=actor, action="restriction.lifted", controller_id=controller_id,
                               subject_id=subject_id, details={"restriction": restriction_id, "request": request_id,
                                                               "person_told_on": person_told_on.isoformat()})
    return len(active)


def restricted_subjects(vault: Vault, subject_ids: Sequence[str], *, ignoring: Sequence[str] = ()) -> dict[str, str]:
    """{subject: grounds (a GROUNDS code)} of those of the subjects with an active restriction on
    other grounds than `ignoring`."""
    found: dict[str, str] = {}
    with vault.engine.connect() as conn:
        for part in chunks(sorted(set(subject_ids))):
            for sid, grounds in conn.execute(select(restriction.c.subject_id, restriction.c.grounds).where(
                    restriction.c.subject_id.in_(part), restriction.c.lifted_at.is_(None),
                    restriction.c.grounds.not_in(list(ignoring)))
                    .order_by(restriction.c.placed_at)):
                found.setdefault(sid, grounds)
    return found


def refuse_restricted(vault: Vault, *, controller_id: str, subject_ids: Sequence[str], operation: str,
                      actor: str, at: datetime, ignoring: Sequence[str] = ()) -> dict[str, str]:
    """Audit the refusal of `operation` for each restricted subject among subject_ids; return them
    with their grounds, in subject order."""
    restricted = dict(sorted(restricted_subjects(vault, subject_ids, ignoring=ignoring).items()))
    if restricted:
        with vault.engine.begin() as conn:
            for sid, grounds in restricted.items():
                vault.audit.append(conn, at=at, actor=actor, action="restriction.refused",
                                   controller_id=controller_id, subject_id=sid,
                                   details={"operation": operation, "grounds": grounds})
    return restricted


def require_unrestricted(vault: Vault, *, controller_id: str, subject_ids: Sequence[str], operation: str,
                         actor: str, at: datetime, ignoring: Sequence[str] = ()) -> None:
    """Refuse (Restricted, audited) an operation other than storage on restricted data; operation is a
    code word (marketing_export, disclosure, rectification, ...)."""
    if refused := refuse_restricted(vault, controller_id=controller_id, subject_ids=subject_ids,
                                    operation=operation, actor=actor, at=at, ignoring=ignoring):
        subject_id, grounds = next(iter(refused.items()))
        raise Restricted(f"{operation.replace('_', ' ')} refused: the data of subject {subject_id} is restricted "
                         f"({GROUNDS[grounds]}); it may only be stored until the restriction is lifted")

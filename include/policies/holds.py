"""Legal holds: data kept for legal claims or an authority's enquiry is never deleted (Art. 17(3)(e)).

A hold covers a whole controller, one data subject or one record, with a reason and an optional end.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, exists, insert, or_, select, update

from include.errors import InvalidInput, UnknownRecord
from include.vault.schema import controller, data_subject, legal_hold, record
from include.vault.store import Vault, new_id


def held(rec: Table, now: datetime) -> ColumnElement[bool]:
    """True for rows of `rec` (the record table or an alias of it) under an active hold at `now`."""
    return exists().where(
        legal_hold.c.controller_id == rec.c.controller_id,
        or_(legal_hold.c.subject_id.is_(None), legal_hold.c.subject_id == rec.c.subject_id),
        or_(legal_hold.c.record_id.is_(None), legal_hold.c.record_id == rec.c.id),
        legal_hold.c.placed_at <= now,
        or_(legal_hold.c.lifted_at.is_(None), legal_hold.c.lifted_at > now),
        or_(legal_hold.c.ends_at.is_(None), legal_hold.c.ends_at > now),
    )


def place_hold(vault: Vault, *, controller_id: str, reason: str, actor: str, at: datetime,
               subject_id: str | None = None, record_id: str | None = None,
               ends_at: datetime | None = None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a legal hold needs a reason")
    if len(reason) > 500:
        raise InvalidInput("a legal hold's reason is limited to 500 characters")
    if ends_at is not None and ends_at <= at:
        raise InvalidInput("a legal hold's end must be after the time it is placed")
    hold_id = new_id()
    with vault.engine.begin() as conn:
        if not conn.execute(select(controller.c.id).where(controller.c.id == controller_id)).first():
            raise UnknownRecord(f"controller '{controller_id}' is not registered in the vault")
        if subject_id and not conn.execute(select(data_subject.c.id).where(
                data_subject.c.id == subject_id, data_subject.c.controller_id == controller_id)).first():
            raise UnknownRecord(f"data subject {subject_id} is not one of controller '{controller_id}'")
        if record_id and not conn.execute(select(record.c.id).where(
                and_(record.c.id == record_id, record.c.controller_id == controller_id))).first():
            raise UnknownRecord(f"record {record_id} is not one of controller '{controller_id}'")
        conn.execute(insert(legal_hold).values(
            id=hold_id, controller_id=controller_id, subject_id=subject_id, record_id=record_id,
            reason=reason, placed_by=actor, placed_at=at, ends_at=ends_at))
        scope = "record" if record_id else "subject" if subject_id else "controller"
        vault.audit.append(conn, at=at, actor=actor, action="legal_hold.placed",
                           controller_id=controller_id, subject_id=subject_id,
                           details={"hold": hold_id, "scope": scope, "record": record_id,
                                    "ends_at": ends_at.isoformat() if ends_at else None})
    return hold_id


def lift_hold(vault: Vault, hold_id: str, *, actor: str, at: datetime) -> bool:
    """Lift a hold; False if it was already lifted (idempotent)."""
    with vault.engine.begin() as conn:
        row = conn.execute(select(legal_hold).where(legal_hold.c.id == hold_id)).first()
        if row is None:
            raise UnknownRecord(f"legal hold {hold_id} does not exist")
        if row.lifted_at is not None:
            return False
        conn.execute(update(legal_hold).where(legal_hold.c.id == hold_id)
                     .values(lifted_at=at, lifted_by=actor))
        vault.audit.append(conn, at=at, actor=actor, action="legal_hold.lifted",
                           controller_id=row.controller_id, subject_id=row.subject_id,
                           details={"hold": hold_id})
    return True

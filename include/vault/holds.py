"""Legal holds: data kept for legal claims or an authority's enquiry is never deleted (Art. 17(3)(e)),
and data under an open request, kept until the request is answered (DPA 2018 s.173).

A hold covers a whole controller, one data subject or a set of records, with a reason and an optional
end. A record's retention end is the later of its rule's end and any hold's: while held, no workflow
deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, FromClause, Table, and_, exists, insert, or_, select, update

from include.common.errors import InvalidInput, UnknownRecord
from include.vault.keystore import chunks
from include.vault.schema import (
    OPEN_STATUSES,
    controller,
    data_subject,
    legal_hold,
    legal_hold_record,
    record,
    request_subject,
    rights_request,
)
from include.vault.store import Vault, new_id

SCOPES = ("controller", "subject", "records")


def held(rec: FromClause, now: datetime) -> ColumnElement[bool]:
    """True for rows of `rec` (the record table or an alias of it) under an active hold at `now`."""
    active = and_(legal_hold.c.placed_at <= now,
                  or_(legal_hold.c.lifted_at.is_(None), legal_hold.c.lifted_at > now),
                  or_(legal_hold.c.ends_at.is_(None), legal_hold.c.ends_at > now))
    # Two flat EXISTS, each correlated to `rec` directly (a nested one would not be).
    by_controller_or_subject = exists().where(
        legal_hold.c.controller_id == rec.c.controller_id,
        or_(legal_hold.c.scope == "controller",
            and_(legal_hold.c.scope == "subject", legal_hold.c.subject_id == rec.c.subject_id)),
        active)
    by_record = exists().where(legal_hold_record.c.record_id == rec.c.id,
                               legal_hold.c.id == legal_hold_record.c.hold_id, active)
    return or_(by_controller_or_subject, by_record)


def under_open_request(rec: Table) -> ColumnElement[bool]:
    """True for rows of `rec` whose data subject has an open request: the subject it was found to be,
    or any subject its identities led to (request_subject)."""
    is_open = rights_request.c.status.in_(OPEN_STATUSES)
    # Two flat EXISTS, each correlated to `rec` directly.
    return or_(exists().where(rights_request.c.subject_id == rec.c.subject_id, is_open),
               exists().where(request_subject.c.subject_id == rec.c.subject_id,
                              rights_request.c.id == request_subject.c.request_id, is_open))


def place_hold(vault: Vault, *, controller_id: str, reason: str, actor: str, at: datetime,
               subject_id: str | None = None, record_ids: Sequence[str] = (),
               ends_at: datetime | None = None) -> str:
    """Hold a controller's data, one subject's, or a set of records (give at most one of those)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a legal hold needs a reason")
    if len(reason) > 500:
        raise InvalidInput("a legal hold's reason is limited to 500 characters")
    if ends_at is not None and ends_at <= at:
        raise InvalidInput("a legal hold's end must be after the time it is placed")
    if subject_id and record_ids:
        raise InvalidInput("a legal hold covers a subject or a set of records, not both")
    record_ids = sorted(set(record_ids))
    scope = "records" if record_ids else "subject" if subject_id else "controller"
    hold_id = new_id()
    with vault.engine.begin() as conn:
        if not conn.execute(select(controller.c.id).where(controller.c.id == controller_id)).first():
            raise UnknownRecord(f"controller '{controller_id}' is not registered in the vault")
        if subject_id and not conn.execute(select(data_subject.c.id).where(
                data_subject.c.id == subject_id, data_subject.c.controller_id == controller_id)).first():
            raise UnknownRecord(f"data subject {subject_id} is not one of controller '{controller_id}'")
        found: set[str] = set()
        for part in chunks(record_ids):
            found.update(conn.execute(select(record.c.id).where(
                record.c.id.in_(part), record.c.controller_id == controller_id)).scalars())
        if missing := [rid for rid in record_ids if rid not in found]:
            raise UnknownRecord(f"record {missing[0]} is not one of controller '{controller_id}'"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        conn.execute(insert(legal_hold).values(
            id=hold_id, scope=scope, controller_id=controller_id, subject_id=subject_id,
            reason=reason, placed_by=actor, placed_at=at, ends_at=ends_at))
        if record_ids:
            conn.execute(insert(legal_hold_record), [{"hold_id": hold_id, "record_id": rid}
                                                     for rid in record_ids])
        vault.audit.append(conn, at=at, actor=actor, action="legal_hold.placed",
                           controller_id=controller_id, subject_id=subject_id,
                           details={"hold": hold_id, "scope": scope, "records": len(record_ids),
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

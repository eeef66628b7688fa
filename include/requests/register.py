"""The register of data subjects' requests (Art. 15-21).

While a request is open, nothing it covers may be deleted by a scheduled purge (DPA 2018 s.173).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ColumnElement, Table, exists, insert, select, update

from include.errors import InvalidInput, UnknownRecord
from include.vault.schema import data_subject, rights_request
from include.vault.store import Vault, new_id

KINDS = ("access", "rectify", "erase", "restrict", "object")
OPEN_STATUSES = ("received", "in_progress", "paused")
CLOSED_STATUSES = ("completed", "refused")


def under_open_request(rec: Table) -> ColumnElement[bool]:
    """True for rows of `rec` whose data subject has an open request."""
    return exists().where(rights_request.c.subject_id == rec.c.subject_id,
                          rights_request.c.status.in_(OPEN_STATUSES))


def register_request(vault: Vault, *, controller_id: str, subject_id: str | None, kind: str,
                     received_on: date, actor: str, at: datetime) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"request kind '{kind}' is not one of {', '.join(KINDS)}")
    request_id = new_id()
    with vault.engine.begin() as conn:
        if subject_id and not conn.execute(select(data_subject.c.id).where(
                data_subject.c.id == subject_id, data_subject.c.controller_id == controller_id)).first():
            raise UnknownRecord(f"data subject {subject_id} is not one of controller '{controller_id}'")
        conn.execute(insert(rights_request).values(
            id=request_id, controller_id=controller_id, subject_id=subject_id, kind=kind,
            status="received", received_on=received_on))
        vault.audit.append(conn, at=at, actor=actor, action="request.received",
                           controller_id=controller_id, subject_id=subject_id,
                           details={"request": request_id, "kind": kind,
                                    "received_on": received_on.isoformat()})
    return request_id


def close_request(vault: Vault, request_id: str, *, status: str, actor: str, at: datetime) -> None:
    if status not in CLOSED_STATUSES:
        raise InvalidInput(f"a request closes as one of {', '.join(CLOSED_STATUSES)}, not '{status}'")
    with vault.engine.begin() as conn:
        row = conn.execute(select(rights_request).where(rights_request.c.id == request_id)).first()
        if row is None:
            raise UnknownRecord(f"request {request_id} does not exist")
        if row.status in CLOSED_STATUSES:
            return
        conn.execute(update(rights_request).where(rights_request.c.id == request_id)
                     .values(status=status, closed_at=at))
        vault.audit.append(conn, at=at, actor=actor, action=f"request.{status}",
                           controller_id=row.controller_id, subject_id=row.subject_id,
                           details={"request": request_id})

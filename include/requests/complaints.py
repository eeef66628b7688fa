"""Complaints about the handling of personal data (Data (Use and Access) Act 2025, in force from 19 June
2026): the controller acknowledges a complaint within 30 days of receiving it, answers without undue
delay and tells the person the outcome. The agency registers them for its clients, about a request
or on their own, and each is audited with the person acting.

A complaint's reference is its controller's case prefix, the year and C with a number (OAK-2026-C0003).
Only dates, the outcome and references are kept: what the person wrote stays in the controller's mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from include.common.errors import InvalidInput, UnknownRecord
from include.requests.register import case_prefix, find_request, next_number, prepare_counter
from include.vault.schema import complaint, complaint_counter, controller
from include.vault.store import Vault, new_id

ACKNOWLEDGE_DAYS = 30
OUTCOMES = {
    "upheld": "upheld",
    "partly_upheld": "partly upheld",
    "not_upheld": "not upheld",
    "withdrawn": "withdrawn by the person",
}


@dataclass(frozen=True)
class Complaint:
    id: str
    reference: str
    controller_id: str
    request_id: str | None
    received_on: date
    acknowledge_by: date
    acknowledged_on: date | None
    closed_on: date | None
    outcome: str | None
    days_left: int | None  # to acknowledge it; None once acknowledged or closed
    overdue: bool  # not acknowledged by its day

    @property
    def is_open(self) -> bool:
        return self.closed_on is None


def _complaint(row, today: date) -> Complaint:
    waiting = row.acknowledged_on is None and row.closed_on is None
    return Complaint(row.id, row.reference, row.controller_id, row.request_id, row.received_on, row.acknowledge_by,
                     row.acknowledged_on, row.closed_on, row.outcome,
                     (row.acknowledge_by - today).days if waiting else None, waiting and today > row.acknowledge_by)


def register_complaint(vault: Vault, *, controller_id: str, received_on: date, actor: str, at: datetime,
                       request_id: str | None = None) -> Complaint:
    """Register a complaint (request_id: the request it is about, by id or case reference)."""
    if received_on > at.date():
        raise InvalidInput(f"a complaint cannot be received in the future ({received_on})")
    about = find_request(vault, request_id) if request_id else None
    if about is not None and about.controller_id != controller_id:
        raise InvalidInput(f"request {about.case_reference or about.id} is not one of controller '{controller_id}'")
    with vault.engine.connect() as conn:
        if conn.execute(select(controller.c.id).where(controller.c.id == controller_id)).first() is None:
            raise UnknownRecord(f"controller '{controller_id}' is not registered in the vault")
    prepare_counter(vault, complaint_counter, controller_id, received_on.year)
    with vault.engine.begin() as conn:
        prefix = case_prefix(conn, controller_id)
        reference = f"{prefix}-{received_on.year}-C{next_number(conn, complaint_counter, prefix, received_on.year):04d}"
        complaint_id = new_id()
        conn.execute(insert(complaint).values(
            id=complaint_id, reference=reference, controller_id=controller_id,
            request_id=about.id if about else None, received_on=received_on,
            acknowledge_by=received_on + timedelta(days=ACKNOWLEDGE_DAYS)))
        vault.audit.append(conn, at=at, actor=actor, action="complaint.received", controller_id=controller_id,
                           details={"complaint": complaint_id, "reference": reference,
                                    "received_on": received_on.isoformat(),
                                    **({"request": about.id} if about else {})})
        return _complaint(_row(conn, complaint_id), at.date())


def _row(conn: Connection, complaint_id: str):
    return conn.execute(select(complaint).where(complaint.c.id == complaint_id)).one()


def _find(conn: Connection, reference_or_id: str):
    wanted = reference_or_id.strip()
    row = conn.execute(select(complaint).where(
        (complaint.c.reference == wanted.upper()) | (complaint.c.id == wanted)).with_for_update()).first()
    if row is None:
        raise UnknownRecord(f"complaint {wanted} does not exist")
    return row


def _change(vault: Vault, reference_or_id: str, *, action: str, on: date, actor: str, at: datetime,
            check, details: dict | None = None) -> Complaint:
    with vault.engine.begin() as conn:
        row = _find(conn, reference_or_id)
        if row.closed_on is not None:
            raise InvalidInput(f"complaint {row.reference} is already closed")
        if on < row.received_on:
            raise InvalidInput(f"complaint {row.reference} was received on {row.received_on}, after {on}")
        values = check(row)
        conn.execute(update(complaint).where(complaint.c.id == row.id).values(**values))
        vault.audit.append(conn, at=at, actor=actor, action=f"complaint.{action}", controller_id=row.controller_id,
                           details={"complaint": row.id, "reference": row.reference, "on": on.isoformat(),
                                    **({"request": row.request_id} if row.request_id else {}), **(details or {})})
        return _complaint(_row(conn, row.id), at.date())


def acknowledge_complaint(vault: Vault, reference_or_id: str, *, on: date, actor: str, at: datetime) -> Complaint:
    """The person was told their complaint was received."""
    def acknowledged(row) -> dict:
        if row.acknowledged_on is not None:
            raise InvalidInput(f"complaint {row.reference} was acknowledged on {row.acknowledged_on}")
        return {"acknowledged_on": on}
    return _change(vault, reference_or_id, action="acknowledged", on=on, actor=actor, at=at, check=acknowledged)


def close_complaint(vault: Vault, reference_or_id: str, *, on: date, outcome: str, actor: str,
                    at: datetime) -> Complaint:
    """The complaint is answered and the person told the outcome (one of OUTCOMES). An unacknowledged
    complaint is acknowledged by its answer."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"a complaint's outcome is one of {', '.join(OUTCOMES)}, not '{outcome}'")

    def closed(row) -> dict:
        return {"closed_on": on, "outcome": outcome, "acknowledged_on": row.acknowledged_on or on}
    return _change(vault, reference_or_id, action="closed", on=on, actor=actor, at=at, check=closed,
                   details={"outcome": outcome})


def complaints(vault: Vault, *, today: date, controller_id: str | None = None, open_only: bool = False,
               request_id: str | None = None) -> list[Complaint]:
    """The complaints, oldest first."""
    query = select(complaint)
    if controller_id is not None:
        query = query.where(complaint.c.controller_id == controller_id)
    if open_only:
        query = query.where(complaint.c.closed_on.is_(None))
    if request_id is not None:
        query = query.where(complaint.c.request_id == request_id)
    with vault.engine.connect() as conn:
        rows = conn.execute(query.order_by(complaint.c.received_on, complaint.c.reference)).all()
    return [_complaint(row, today) for row in rows]


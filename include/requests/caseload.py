"""The register as the staff see it: each request's case reference, status in plain words, due date,
days left and whether it is overdue; its timeline from the audit log; and the figures of a caseload
by controller (due this week, overdue, completed on time, open requests week by week).

While a request's clock is stopped (paused, or awaiting the requester's identity), its due date moves
on day by day: the date shown is the one it would have if the clock restarted today.
Nothing here holds a personal value: case references, opaque ids, dates and counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select

from include.common.errors import InvalidInput, UnknownRecord
from include.policies.instructions import ReviewGates
from include.requests.deadlines import due_date
from include.requests.kinds import KINDS
from include.requests.register import requests_query
from include.vault.schema import (
    OPEN_STATUSES,
    audit_event,
    complaint,
    controller,
    controller_review,
    rights_request,
)
from include.vault.store import Vault

STATUS_LABELS = {
    "received": "received",
    "awaiting_id": "awaiting identity",
    "in_progress": "in progress",
    "awaiting_review": "awaiting review",
    "paused": "paused",
    "completed": "completed",
    "refused": "refused",
}
DUE_SOON_DAYS = 7  # "due this week"
DASHBOARD_WEEKS = 12
ON_TIME_DAYS = 90


@dataclass(frozen=True)
class CaseLine:
    request_id: str
    case_reference: str | None
    controller_id: str
    kind: str
    status: str
    status_label: str  # paused ones with their reason: "paused (fee)"
    pause_reason: str | None
    received_on: date
    due_on: date
    days_left: int | None  # None once closed; negative when overdue
    overdue: bool
    closed_on: date | None
    on_time: bool | None  # closed ones: answered by the due date

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


def _check_choice(value: str | None, choices, what: str) -> None:
    if value is not None and value not in choices:
        raise InvalidInput(f"{what} '{value}' is not one of {', '.join(choices)}")


def caseload(vault: Vault, *, today: date, controller_id: str | None = None, status: str | None = None,
             kind: str | None = None, open_only: bool = False) -> list[CaseLine]:
    """The requests, oldest first, with what the staff need to run them; filtered by controller,
    status (a code of STATUS_LABELS) and kind."""
    _check_choice(status, STATUS_LABELS, "status")
    _check_choice(kind, KINDS, "request kind")
    query = _lines_query()
    if controller_id is not None:
        query = query.where(rights_request.c.controller_id == controller_id)
    if status is not None:
        query = query.where(rights_request.c.status == status)
    if kind is not None:
        query = query.where(rights_request.c.kind == kind)
    if open_only:
        query = query.where(rights_request.c.status.in_(OPEN_STATUSES))
    with vault.engine.connect() as conn:
        rows = conn.execute(query.order_by(rights_request.c.received_on, rights_request.c.id)).all()
    return [_line(row, today) for row in rows]


def _lines_query():
    """Requests with what a line needs: the case reference, a stopped clock's reason, the region (deadlines)."""
    return requests_query().add_columns(controller.c.region).join(
        controller, controller.c.id == rights_request.c.controller_id)


def case_line(vault: Vault, request_id: str, *, today: date) -> CaseLine:
    """One request's line of the caseload."""
    query = _lines_query().where(rights_request.c.id == request_id)
    with vault.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise UnknownRecord(f"request {request_id} does not exist")
    return _line(row, today)


def _line(row, today: date) -> CaseLine:
    is_open = row.status in OPEN_STATUSES
    due = row.due_on
    if is_open and row.paused_on is not None:  # the clock is stopped: the due date moves on while it is
        due = due_date(row.clock_start, row.region, extension_months=row.extension_months,
                       paused_days=row.paused_days + max(0, (today - row.paused_on).days))
    closed_on = row.closed_at.date() if row.closed_at is not None else None
    label = STATUS_LABELS[row.status] + (f" ({row.pause_reason})" if row.status == "paused" and row.pause_reason
                                         else "")
    return CaseLine(row.id, row.case_reference, row.controller_id, row.kind, row.status, label, row.pause_reason,
                    row.received_on, due, (due - today).days if is_open else None, is_open and today > due,
                    closed_on, (closed_on <= row.due_on) if row.status == "completed" and closed_on else None)


def timeline(vault: Vault, request_id: str) -> list[dict]:
    """The request's audited events, oldest first: when, who, what, and the event's details (ids,
    dates, counts and store names; never a personal value, which the audit log refuses)."""
    # Details are JSON written with sort_keys and no spaces (include/vault/audit.py): a request's
    # events hold `"request":"<id>"`.
    marker = f'%"request":"{request_id}"%'
    with vault.engine.connect() as conn:
        rows = conn.execute(select(audit_event.c.at, audit_event.c.actor, audit_event.c.action, audit_event.c.details)
                            .where(audit_event.c.details.like(marker)).order_by(audit_event.c.seq)).all()
    return [{"at": row.at, "actor": row.actor, "action": row.action, "details": json.loads(row.details)}
            for row in rows]


@dataclass
class ControllerFigures:
    controller_id: str
    open: int = 0
    due_this_week: int = 0
    overdue: int = 0
    awaiting_review: int = 0
    awaiting_identity: int = 0
    paused: int = 0
    completed_90: int = 0  # completed in the last 90 days
    on_time_90: int = 0  # of those, by their due date
    complaints_to_acknowledge: int = 0
    open_by_week: list[tuple[date, int]] = field(default_factory=list)  # (week's Monday, open at its end)


def dashboard(vault: Vault, *, today: date) -> list[ControllerFigures]:
    """Each controller's figures, by controller id."""
    with vault.engine.connect() as conn:
        controllers = list(conn.execute(select(controller.c.id).order_by(controller.c.id)).scalars())
        unacknowledged: dict[str, int] = dict(conn.execute(
            select(complaint.c.controller_id, func.count()).where(
                complaint.c.acknowledged_on.is_(None), complaint.c.closed_on.is_(None))
            .group_by(complaint.c.controller_id)).all())
    figures = {cid: ControllerFigures(cid, complaints_to_acknowledge=unacknowledged.get(cid, 0))
               for cid in controllers}
    monday = today - timedelta(days=today.weekday())
    weeks = [monday - timedelta(weeks=n) for n in range(DASHBOARD_WEEKS - 1, -1, -1)]
    open_at = {cid: dict.fromkeys(weeks, 0) for cid in controllers}
    for line in caseload(vault, today=today):
        mine = figures[line.controller_id]
        _count(mine, line, today)
        for week in weeks:
            end = min(week + timedelta(days=6), today)
            if line.received_on <= end and (line.closed_on is None or line.closed_on > end):
                open_at[line.controller_id][week] += 1
    for cid, counts in open_at.items():
        figures[cid].open_by_week = list(counts.items())
    return list(figures.values())


def _count(mine: ControllerFigures, line: CaseLine, today: date) -> None:
    if line.is_open:
        mine.open += 1
        mine.overdue += line.overdue
        mine.due_this_week += not line.overdue and line.days_left is not None and line.days_left <= DUE_SOON_DAYS
        mine.awaiting_review += line.status == "awaiting_review"
        mine.awaiting_identity += line.status == "awaiting_id"
        mine.paused += line.status == "paused"
    elif line.status == "completed" and line.closed_on and line.closed_on > today - timedelta(days=ON_TIME_DAYS):
        mine.completed_90 += 1
        mine.on_time_90 += bool(line.on_time)


def review_gates(vault: Vault, controller_id: str) -> ReviewGates:
    """Where the controller wants a person to decide first (its instruction file's `review`)."""
    with vault.engine.connect() as conn:
        row = conn.execute(select(controller_review).where(controller_review.c.controller_id == controller_id)).first()
    if row is None:
        return ReviewGates()
    return ReviewGates(identity=row.identity, package=row.package, erasure=row.erasure)


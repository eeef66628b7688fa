"""The register of data subjects' requests (Art. 15-21): who asked what of which controller, when
the clock started, when the answer is due, and how the request ended. Every change is audited.

While a request is open, nothing it covers may be deleted by a scheduled purge (DPA 2018 s.173):
every vault subject its identities lead to is held, not only the one it may be found to be. The
identities a request was made with are kept encrypted under the request's own key, which is destroyed
once the request has been closed for the accountability period (shred_closed_requests); the
request's record (dates, status, outcome) stays.

Each request has a case reference (OAK-2026-0007: the controller's case prefix, the year it was
received, a number per prefix and year), taken when it is registered and quoted in its package, its
confirmation and the workflows' logs beside its id. `with_case_reference` gives one to a request
registered before references existed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection, Select, Table, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from include.common.errors import DataKeyDestroyed, InvalidInput, UnknownRecord
from include.common.identities import NORMALISERS
from include.crypto.envelope import FieldCipher
from include.policies.instructions import default_case_prefix
from include.requests.deadlines import MAX_EXTENSION_MONTHS, clock_start, due_date
from include.requests.kinds import KINDS
from include.vault.holds import held
from include.vault.keystore import chunks
from include.vault.schema import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    case_counter,
    case_reference,
    controller,
    controller_detail,
    controller_review,
    data_key,
    data_subject,
    possible_match,
    request_identity,
    request_lease,
    request_pause,
    request_subject,
    rights_request,
)
from include.vault.store import Vault, new_id

_CORRECTED = "corrected_"  # request_identity kinds of a rectification's new values
REFERENCE_MAX = 64  # characters of the controller's own reference
# Why a request's clock may stop (Art. 12A, DUAA 2025): waiting for the requester's identity, for a
# clarification the request genuinely needs, or for a fee.
PAUSE_REASONS = ("identity", "clarification", "fee")
# Why a person may refuse a request (Art. 12(5), s.53 DPA 2018) or end it, in plain words for the letter.
REFUSAL_REASONS = {
    "manifestly_unfounded": "the request is manifestly unfounded",
    "manifestly_excessive": "the request is manifestly excessive, in particular because it repeats an earlier one",
    "identity_not_verified": "the requester's identity could not be confirmed",
    "package_rejected": "the answer prepared was not released after its review",
    "restricted": "the person's data is restricted and cannot be changed while the restriction lasts",
    "closed_without_answer": "the request was closed without an answer",
}


@dataclass(frozen=True)
class Request:
    id: str
    controller_id: str
    subject_id: str | None
    kind: str
    status: str
    reference: str | None
    received_on: date
    clock_start: date
    due_on: date
    extension_months: int
    paused_days: int
    refusal_reason: str | None
    package: str | None
    particulars: dict
    case_reference: str | None = None  # None only for a request registered before references existed
    pause_reason: str | None = None  # while the clock is stopped: one of PAUSE_REASONS

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


def _request(row) -> Request:
    return Request(row.id, row.controller_id, row.subject_id, row.kind, row.status, row.reference,
                   row.received_on, row.clock_start, row.due_on, row.extension_months, row.paused_days,
                   row.refusal_reason, row.package, json.loads(row.particulars or "{}"), row.case_reference,
                   row.pause_reason)


def requests_query() -> Select:
    """Requests with their case references and the reasons their clocks are stopped."""
    return (select(rights_request, case_reference.c.reference.label("case_reference"),
                   request_pause.c.reason.label("pause_reason"))
            .outerjoin(case_reference, case_reference.c.request_id == rights_request.c.id)
            .outerjoin(request_pause, request_pause.c.request_id == rights_request.c.id))


def _request_query(request_id: str) -> Select:
    return requests_query().where(rights_request.c.id == request_id)


def case_prefix(conn: Connection, controller_id: str) -> str:
    return conn.execute(select(controller_detail.c.case_prefix).where(
        controller_detail.c.controller_id == controller_id)).scalar() or default_case_prefix(controller_id)


def prepare_counter(vault: Vault, counter: Table, controller_id: str, year: int) -> None:
    """Make sure the counter row of the controller's prefix and the year exists, in a transaction of
    its own before the one that takes a number: taking it then locks one existing row. (Locking a row
    that is not there yet locks a gap on MariaDB, and two registrations inserting into it deadlock.)"""
    with vault.engine.connect() as conn:
        prefix = case_prefix(conn, controller_id)
        if conn.execute(select(counter.c.prefix).where(counter.c.prefix == prefix, counter.c.year == year)).first():
            return
    try:
        with vault.engine.begin() as conn:
            conn.execute(insert(counter).values(prefix=prefix, year=year, last_number=0))
    except IntegrityError:
        pass  # a registration beside this one made it first


def next_number(conn: Connection, counter: Table, prefix: str, year: int) -> int:
    """The next number of the prefix and year in a counter table (case_counter, complaint_counter) whose
    row prepare_counter made, in the caller's transaction, under a row lock: two callers never take
    the same number."""
    key = (counter.c.prefix == prefix) & (counter.c.year == year)
    last = conn.execute(select(counter.c.last_number).where(key).with_for_update()).scalar_one()
    conn.execute(update(counter).where(key).values(last_number=last + 1))
    return last + 1


def _allocate_case_reference(conn: Connection, request_id: str, controller_id: str, received_on: date) -> str:
    """The request's new case reference, in the caller's transaction."""
    prefix = case_prefix(conn, controller_id)
    reference = f"{prefix}-{received_on.year}-{next_number(conn, case_counter, prefix, received_on.year):04d}"
    conn.execute(insert(case_reference).values(request_id=request_id, reference=reference))
    return reference


def with_case_reference(vault: Vault, request: Request, *, actor: str, at: datetime) -> Request:
    """The request with its case reference, one allocated now for a request registered before
    references existed (idempotent: two callers at once get the same one)."""
    if request.case_reference is not None:
        return request
    prepare_counter(vault, case_counter, request.controller_id, request.received_on.year)
    with vault.engine.begin() as conn:
        # The request's row locked first: a second caller waits here, then finds the reference made.
        conn.execute(select(rights_request.c.id).where(rights_request.c.id == request.id).with_for_update()).one()
        reference = conn.execute(select(case_reference.c.reference).where(
            case_reference.c.request_id == request.id)).scalar()
        if reference is None:
            reference = _allocate_case_reference(conn, request.id, request.controller_id, request.received_on)
            vault.audit.append(conn, at=at, actor=actor, action="request.case_reference",
                               controller_id=request.controller_id, subject_id=request.subject_id,
                               details={"request": request.id, "case": reference})
    return replace(request, case_reference=reference)


def _region(conn, controller_id: str) -> str:
    region = conn.execute(select(controller.c.region).where(controller.c.id == controller_id)).scalar()
    if region is None:
        raise UnknownRecord(f"controller '{controller_id}' is not registered in the vault")
    return region


def register_request(vault: Vault, *, controller_id: str, kind: str, received_on: date, actor: str,
                     at: datetime, subject_id: str | None = None,
                     identities: Mapping[str, Sequence[str]] | None = None, reference: str | None = None,
                     identity_verified_on: date | None = None, fee_received_on: date | None = None,
                     particulars: Mapping[str, str] | None = None,
                     corrections: Mapping[str, str] | None = None) -> str:
    """Register a request and return its id; with a reference already registered for the controller,
    the existing request's id (an import run twice adds nothing).

    particulars: what the right needs, none of it personal (the field to rectify, an objection's
    ground). corrections: a rectification's new values by identity kind, kept encrypted like the
    identities."""
    if kind not in KINDS:
        raise InvalidInput(f"request kind '{kind}' is not one of {', '.join(KINDS)}")
    given = [(k, NORMALISERS[k](v)) for k, values in (identities or {}).items() if k in NORMALISERS
             for v in values]
    if unknown := sorted(set(identities or {}) - set(NORMALISERS)):
        raise InvalidInput(f"identity kind '{unknown[0]}' is not one of {', '.join(NORMALISERS)}")
    if unknown := sorted(set(corrections or {}) - set(NORMALISERS)):
        raise InvalidInput(f"a correction of '{unknown[0]}' is not possible: corrected fields are "
                           f"{', '.join(NORMALISERS)}")
    given += [(_CORRECTED + k, NORMALISERS[k](v)) for k, v in (corrections or {}).items()]
    if subject_id is None and not given:
        raise InvalidInput("a request needs the subject's id or at least one identity to find them by")
    if reference is not None and not (0 < len(reference) <= REFERENCE_MAX):
        raise InvalidInput(f"a request's reference is 1 to {REFERENCE_MAX} characters")
    start = clock_start(received_on, identity_verified_on=identity_verified_on, fee_received_on=fee_received_on)
    # Found at once, so that purges hold off their data from now: every subject the identities lead
    # to (an email and a phone may lead to two people); the request's subject if they lead to one.
    found = _subjects_by_identities(vault, controller_id, given)
    if subject_id is None and len(found) == 1:
        subject_id = found[0]
    prepare_counter(vault, case_counter, controller_id, received_on.year)
    with vault.engine.begin() as conn:
        if reference is not None and (existing := conn.execute(select(rights_request.c.id).where(
                rights_request.c.controller_id == controller_id,
                rights_request.c.reference == reference)).scalar()):
            return existing
        due = due_date(start, _region(conn, controller_id))
        if subject_id and not conn.execute(select(data_subject.c.id).where(
                data_subject.c.id == subject_id, data_subject.c.controller_id == controller_id)).first():
            raise UnknownRecord(f"data subject {subject_id} is not one of controller '{controller_id}'")
        request_id = new_id()
        # A controller that checks identity first: the clock waits from receipt until the check.
        awaiting_id = identity_verified_on is None and bool(conn.execute(select(controller_review.c.identity).where(
            controller_review.c.controller_id == controller_id)).scalar())
        conn.execute(insert(rights_request).values(
            id=request_id, controller_id=controller_id, subject_id=subject_id, kind=kind,
            status="awaiting_id" if awaiting_id else "received", paused_on=received_on if awaiting_id else None,
            reference=reference, received_on=received_on, identity_verified_on=identity_verified_on,
            fee_received_on=fee_received_on, clock_start=start, due_on=due,
            particulars=json.dumps(dict(particulars), sort_keys=True) if particulars else None))
        if awaiting_id:
            conn.execute(insert(request_pause).values(request_id=request_id, reason="identity"))
        case = _allocate_case_reference(conn, request_id, controller_id, received_on)
        _link_subjects(conn, request_id, [*found, *([subject_id] if subject_id else [])])
        if given:  # a new request: its key is made here (request_cipher would read it outside this transaction)
            cipher = FieldCipher(vault.keystore.create([request_id], at)[request_id])
            conn.execute(insert(request_identity), [
                {"request_id": request_id, "position": i, "kind": k,
                 "ciphertext": cipher.encrypt(request_id, f"{k}#{i}", v)} for i, (k, v) in enumerate(given)])
        vault.audit.append(conn, at=at, actor=actor, action="request.received",
                           controller_id=controller_id, subject_id=subject_id,
                           details={"request": request_id, "case": case, "kind": kind,
                                    **({"awaiting": "identity"} if awaiting_id else {}),
                                    "received_on": received_on.isoformat(),
                                    "clock_start": start.isoformat(), "due_on": due.isoformat(),
                                    "identities": sorted({k for k, _ in given}),
                                    **({"subjects_matched": len(found)} if len(found) > 1 else {}),
                                    **({"particulars": dict(particulars)} if particulars else {})})
    return request_id


def _subjects_by_identities(vault: Vault, controller_id: str, given: Sequence[tuple[str, str]]) -> list[str]:
    """Every vault subject the identities lead to, by id."""
    return sorted({sid for kind, value in given if kind in ("email", "phone", "customer_number")
                   for sid in vault.find_subjects(controller_id, kind, value)})


def _link_subjects(conn: Connection, request_id: str, subject_ids: Sequence[str]) -> None:
    """Record that the request covers the subjects (those not recorded yet)."""
    wanted = sorted(set(subject_ids))
    if not wanted:
        return
    linked = set(conn.execute(select(request_subject.c.subject_id).where(
        request_subject.c.request_id == request_id)).scalars())
    if rows := [{"request_id": request_id, "subject_id": sid} for sid in wanted if sid not in linked]:
        conn.execute(insert(request_subject), rows)


def request_subjects(vault: Vault, request_id: str) -> list[str]:
    """The vault subjects the request covers: those its identities led to and the one it was found to be."""
    with vault.engine.connect() as conn:
        linked = set(conn.execute(select(request_subject.c.subject_id).where(
            request_subject.c.request_id == request_id)).scalars())
        own = conn.execute(select(rights_request.c.subject_id).where(rights_request.c.id == request_id)).scalar()
    return sorted(linked | ({own} if own else set()))


def request_cipher(vault: Vault, request_id: str, at: datetime) -> FieldCipher:
    """The cipher of the request's own key (made on first use), for its identities and work files.

    A closed request gets no new key: its identities were destroyed with its key at the end of the
    accountability period, or it never had any."""
    if key := vault.keystore.fetch([request_id]).get(request_id):
        return FieldCipher(key)
    with vault.engine.connect() as conn:
        status = conn.execute(select(rights_request.c.status).where(rights_request.c.id == request_id)).scalar()
    if status in CLOSED_STATUSES:
        raise DataKeyDestroyed(f"request {request_id} is {status} and its key is destroyed: "
                               "its identities and work files can no longer be read")
    return FieldCipher(vault.keystore.create([request_id], at)[request_id])


def get_request(vault: Vault, request_id: str) -> Request:
    with vault.engine.connect() as conn:
        row = conn.execute(_request_query(request_id)).first()
    if row is None:
        raise UnknownRecord(f"request {request_id} does not exist")
    return _request(row)


def find_request(vault: Vault, case_or_id: str) -> Request:
    """The request by its case reference (OAK-2026-0007, any letter case) or its id."""
    with vault.engine.connect() as conn:
        request_id = conn.execute(select(case_reference.c.request_id).where(
            case_reference.c.reference == case_or_id.strip().upper())).scalar()
    return get_request(vault, request_id or case_or_id.strip())


def request_identities(vault: Vault, request_id: str) -> list[tuple[str, str]]:
    """(kind, normalised value) the request was made with, decrypted with the request's key."""
    return [(kind, value) for kind, value in _request_values(vault, request_id) if kind in NORMALISERS]


def request_corrections(vault: Vault, request_id: str) -> dict[str, str]:
    """A rectification's new values by identity kind, decrypted with the request's key."""
    return {kind[len(_CORRECTED):]: value for kind, value in _request_values(vault, request_id)
            if kind.startswith(_CORRECTED)}


def _request_values(vault: Vault, request_id: str) -> list[tuple[str, str]]:
    with vault.engine.connect() as conn:
        rows = conn.execute(select(request_identity).where(request_identity.c.request_id == request_id)
                            .order_by(request_identity.c.position)).all()
    if not rows:
        return []
    cipher = vault.ciphers([request_id])[request_id]
    return [(row.kind, cipher.decrypt(request_id, f"{row.kind}#{row.position}", row.ciphertext)) for row in rows]


def requests_received(vault: Vault, start: date, end: date, *, kind: str = "access",
                      open_only: bool = True) -> list[str]:
    """Ids of the requests received on days start <= day < end, oldest first."""
    query = select(rights_request.c.id).where(rights_request.c.kind == kind,
                                              rights_request.c.received_on >= start,
                                              rights_request.c.received_on < end)
    if open_only:
        query = query.where(rights_request.c.status.in_(OPEN_STATUSES))
    with vault.engine.connect() as conn:
        return list(conn.execute(query.order_by(rights_request.c.received_on, rights_request.c.id)).scalars())


def requests_to_work(vault: Vault, *, received_before: date, kind: str = "access") -> list[str]:
    """Ids of the open requests received before the day that still need work, whatever day they were
    received on (a run that failed or never happened leaves nothing behind); paused ones, those awaiting
    the requester's identity and those awaiting a person's review wait."""
    query = select(rights_request.c.id).where(
        rights_request.c.kind == kind, rights_request.c.received_on < received_before,
        rights_request.c.status.in_(WORKABLE_STATUSES))
    with vault.engine.connect() as conn:
        return list(conn.execute(query.order_by(rights_request.c.received_on, rights_request.c.id)).scalars())


WORKABLE_STATUSES = ("received", "in_progress")

# Longer than any run of a request's workflow, retries included: a lease outliving its run only
# delays the next run's work on the request.
LEASE = timedelta(hours=6)


def lease_requests(vault: Vault, request_ids: Sequence[str], *, holder: str, at: datetime,
                   ttl: timedelta = LEASE) -> list[str]:
    """Those of the requests the holder (a workflow run) may work on, leased to it until at + ttl:
    free ones, ones whose lease ran out, and its own (renewed). Others are left to their holder."""
    taken: list[str] = []
    with vault.engine.begin() as conn:
        for part in chunks(sorted(set(request_ids))):
            # The requests' rows, locked in id order: two runs leasing the same request queue here.
            conn.execute(select(rights_request.c.id).where(rights_request.c.id.in_(part))
                         .order_by(rights_request.c.id).with_for_update()).all()
            held = {row.request_id: row for row in conn.execute(
                select(request_lease).where(request_lease.c.request_id.in_(part)))}
            for request_id in part:
                current = held.get(request_id)
                if current is not None and current.holder != holder and current.until > at:
                    continue
                conn.execute(delete(request_lease).where(request_lease.c.request_id == request_id))
                conn.execute(insert(request_lease).values(request_id=request_id, holder=holder, until=at + ttl))
                taken.append(request_id)
    return [request_id for request_id in request_ids if request_id in taken]


def require_lease(vault: Vault, request_id: str, *, holder: str, at: datetime) -> None:
    """InvalidInput unless the holder's lease on the request is current (renewing it), so that two
    runs never work on one request at once."""
    if not lease_requests(vault, [request_id], holder=holder, at=at):
        raise InvalidInput(f"request {request_id} is being worked on by another run; this run leaves it alone")


def release_lease(vault: Vault, request_id: str, *, holder: str) -> None:
    with vault.engine.begin() as conn:
        conn.execute(delete(request_lease).where(request_lease.c.request_id == request_id,
                                                 request_lease.c.holder == holder))


def _change(vault: Vault, request_id: str, *, action: str, at: datetime, actor: str, details: dict | None = None,
            check=None, **values) -> Request:
    """Update an open request, audit the change, and return it as it now is."""
    with vault.engine.begin() as conn:
        # The row locked: two people acting on one request at once take turns.
        row = conn.execute(select(rights_request).where(rights_request.c.id == request_id).with_for_update()).first()
        if row is None:
            raise UnknownRecord(f"request {request_id} does not exist")
        if row.status in CLOSED_STATUSES:
            raise InvalidInput(f"request {request_id} is already {row.status}")
        if check:
            values |= check(conn, row)
        if values.get("status") in CLOSED_STATUSES:
            conn.execute(delete(request_pause).where(request_pause.c.request_id == request_id))
        conn.execute(update(rights_request).where(rights_request.c.id == request_id).values(**values))
        vault.audit.append(conn, at=at, actor=actor, action=f"request.{action}", controller_id=row.controller_id,
                           subject_id=values.get("subject_id", row.subject_id),
                           details={"request": request_id, **(details or {})})
        return _request(conn.execute(_request_query(request_id)).one())


def start_request(vault: Vault, request_id: str, *, subject_id: str | None, actor: str, at: datetime) -> Request:
    """The request is being worked on; subject_id: the vault subject it was found to be, if any."""
    return _change(vault, request_id, action="in_progress", at=at, actor=actor, status="in_progress",
                   subject_id=subject_id)


def pause_request(vault: Vault, request_id: str, *, on: date, reason: str, actor: str, at: datetime) -> Request:
    """Stop the clock while the requester's identity, a clarification the request genuinely needs, or a
    fee is awaited (Art. 12A)."""
    if reason not in PAUSE_REASONS:
        raise InvalidInput(f"a request's clock stops for one of {', '.join(PAUSE_REASONS)}, not '{reason}'")

    def stopped(conn, row) -> dict:
        if row.status in ("paused", "awaiting_id"):
            raise InvalidInput(f"request {request_id}'s clock is already stopped")
        if row.status == "awaiting_review":
            raise InvalidInput(f"request {request_id} is answered and awaits its review: its clock cannot stop now")
        if on < row.received_on:
            raise InvalidInput(f"request {request_id} cannot be paused before it was received ({row.received_on})")
        conn.execute(insert(request_pause).values(request_id=request_id, reason=reason))
        return {}
    return _change(vault, request_id, action="paused", at=at, actor=actor,
                   details={"on": on.isoformat(), "reason": reason}, check=stopped, status="paused", paused_on=on)


def _restart(conn, row, request_id: str, on: date) -> dict:
    """The values of a request whose stopped clock restarts on the day: the stopped days move its due date."""
    if on < row.paused_on:
        raise InvalidInput(f"request {request_id}'s clock cannot restart before it stopped ({row.paused_on})")
    paused = row.paused_days + (on - row.paused_on).days
    conn.execute(delete(request_pause).where(request_pause.c.request_id == request_id))
    return {"paused_days": paused, "paused_on": None,
            "due_on": due_date(row.clock_start, _region(conn, row.controller_id), extension_months=row.extension_months,
                               paused_days=paused)}


def resume_request(vault: Vault, request_id: str, *, on: date, actor: str, at: datetime) -> Request:
    """Restart the clock: the paused days move the due date on. A request waits for the next run to
    be worked on again."""
    def moved(conn, row) -> dict:
        if row.status != "paused":
            raise InvalidInput(f"request {request_id} is not paused")
        return _restart(conn, row, request_id, on)
    return _change(vault, request_id, action="resumed", at=at, actor=actor, details={"on": on.isoformat()},
                   check=moved, status="in_progress")


def verify_identity(vault: Vault, request_id: str, *, on: date, actor: str, at: datetime) -> Request:
    """The requester's identity is checked: the clock, stopped since receipt (or since it was paused for
    identity), runs from the day."""
    def verified(conn, row) -> dict:
        reason = conn.execute(select(request_pause.c.reason).where(request_pause.c.request_id == request_id)).scalar()
        if row.status != "awaiting_id" and reason != "identity":
            raise InvalidInput(f"request {request_id} is not awaiting the requester's identity")
        return {**_restart(conn, row, request_id, on), "identity_verified_on": on}
    return _change(vault, request_id, action="identity_verified", at=at, actor=actor,
                   details={"on": on.isoformat()}, check=verified, status="received")


def confirm_erasure(vault: Vault, request_id: str, *, actor: str, at: datetime) -> Request:
    """A person confirmed the erasure, where the controller asks for that: it may now be carried out."""
    def confirmed(conn, row) -> dict:
        if row.kind != "erase" or row.status != "received":
            raise InvalidInput(f"request {request_id} is not an erasure awaiting its confirmation")
        return {}
    return _change(vault, request_id, action="erasure_confirmed", at=at, actor=actor, check=confirmed,
                   status="in_progress")


def show_identities(vault: Vault, request_id: str, *, actor: str, at: datetime) -> list[tuple[str, str]]:
    """The identities the request was made with, for a person who needs to see them: who saw them and
    when is audited (which kinds, never the values)."""
    request = get_request(vault, request_id)
    identities = request_identities(vault, request_id)
    vault.record_event("request.identities_shown", actor=actor, at=at, controller_id=request.controller_id,
                       details={"request": request_id, "case": request.case_reference,
                                "kinds": sorted({kind for kind, _ in identities})})
    return identities


def hold_for_review(vault: Vault, request_id: str, *, package: str, actor: str, at: datetime) -> Request:
    """The request is answered; its package waits for a person to release it (package: where it is held)."""
    return _change(vault, request_id, action="awaiting_review", at=at, actor=actor, details={"package": package},
                   status="awaiting_review", package=package)


def extend_request(vault: Vault, request_id: str, *, months: int, reason: str, notified_on: date, actor: str,
                   at: datetime) -> Request:
    """Extend by up to two further months; the person must be told, with reasons, before the first
    deadline (Art. 12(3))."""
    if not reason.strip():
        raise InvalidInput("an extension needs its reasons")

    def extended(conn, row) -> dict:
        if not 1 <= months <= MAX_EXTENSION_MONTHS:
            raise InvalidInput(f"an extension is 1 to {MAX_EXTENSION_MONTHS} further months, not {months}")
        first_due = due_date(row.clock_start, _region(conn, row.controller_id), paused_days=row.paused_days)
        if notified_on > first_due:
            raise InvalidInput(f"the extension notice of {notified_on} comes after the first deadline {first_due}")
        return {"due_on": due_date(row.clock_start, _region(conn, row.controller_id), extension_months=months,
                                   paused_days=row.paused_days)}
    return _change(vault, request_id, action="extended", at=at, actor=actor, check=extended,
                   details={"months": months, "notified_on": notified_on.isoformat()},
                   extension_months=months, extension_reason=reason)


def complete_request(vault: Vault, request_id: str, *, package: str | None, actor: str, at: datetime) -> Request:
    return _change(vault, request_id, action="completed", at=at, actor=actor, details={"package": package},
                   status="completed", package=package, closed_at=at)


def refuse_request(vault: Vault, request_id: str, *, reason: str, actor: str, at: datetime) -> Request:
    """Refuse, with reasons (a REFUSAL_REASONS code where a person refuses; the workflow's own words
    where a store refused the change); the response also names the right to complain to the ICO and to
    seek a judicial remedy (Art. 12(4)): include/requests/decisions.py writes it."""
    if not reason.strip():
        raise InvalidInput("a refusal needs its reasons")
    return _change(vault, request_id, action="refused", at=at, actor=actor, status="refused",
                   refusal_reason=reason, closed_at=at)


def close_request(vault: Vault, request_id: str, *, status: str, actor: str, at: datetime) -> None:
    """Close a request that is still open (a second close changes nothing)."""
    if status not in CLOSED_STATUSES:
        raise InvalidInput(f"a request closes as one of {', '.join(CLOSED_STATUSES)}, not '{status}'")
    if not get_request(vault, request_id).is_open:
        return
    if status == "completed":
        complete_request(vault, request_id, package=None, actor=actor, at=at)
    else:
        refuse_request(vault, request_id, reason="closed_without_answer", actor=actor, at=at)


# -- the end of the accountability period -----------------------------------------------------------

@dataclass
class ShredReport:
    as_of: str
    dry_run: bool
    months: int
    cutoff: str
    requests: int = 0  # requests whose identities went in this run
    keys_destroyed: int = 0
    kept_by_legal_hold: int = 0
    request_ids: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts and opaque ids only: safe for XCom and logs."""
        return {"as_of": self.as_of, "dry_run": self.dry_run, "months": self.months, "cutoff": self.cutoff,
                "requests": self.requests, "keys_destroyed": self.keys_destroyed,
                "kept_by_legal_hold": self.kept_by_legal_hold, "request_ids": self.request_ids[:1000]}


def shred_closed_requests(vault: Vault, *, as_of: datetime, months: int, actor: str,
                          dry_run: bool = False) -> ShredReport:
    """Destroy the key, and delete the encrypted identities, of every request closed at least `months`
    months before as_of (the accountability period), except while a legal hold covers its controller
    or subject. The request's record (dates, status, outcome, its subjects' opaque ids) stays, and so
    does the audit trail; each request shredded is audited as request.identities_shredded.
    Idempotent: a run killed between the audit and the keys' destruction is finished by the next one
    (which audits those requests again). A dry run counts what would go and changes nothing."""
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise InvalidInput("as_of must be a time with its zone (UTC)")
    if not isinstance(months, int) or isinstance(months, bool) or months < 1:
        raise InvalidInput(f"the accountability period is a whole number of months, at least 1, got {months!r}")
    cutoff = as_of - relativedelta(months=months)
    report = ShredReport(as_of.isoformat(), dry_run, months, cutoff.isoformat())
    closed = (rights_request.c.status.in_(CLOSED_STATUSES), rights_request.c.closed_at.is_not(None),
              rights_request.c.closed_at <= cutoff)
    with vault.engine.connect() as conn:
        rows = conn.execute(select(rights_request.c.id, rights_request.c.controller_id, rights_request.c.subject_id,
                                   rights_request.c.closed_at).where(*closed, ~held(rights_request, as_of))
                            .order_by(rights_request.c.closed_at, rights_request.c.id)).all()
        # Those a hold keeps, whose identities are still there (a hold placed after the shredding keeps nothing).
        report.kept_by_legal_hold = conn.execute(select(func.count()).select_from(rights_request).where(
            *closed, held(rights_request, as_of),
            exists().where(request_identity.c.request_id == rights_request.c.id))).scalar_one()
    for part in chunks(rows):
        ids = [row.id for row in part]
        with vault.engine.connect() as conn:
            with_identities = set(conn.execute(select(request_identity.c.request_id).distinct().where(
                request_identity.c.request_id.in_(ids))).scalars())
        with vault.keystore.engine.connect() as conn:
            with_key = set(conn.execute(select(data_key.c.subject_id).where(data_key.c.subject_id.in_(ids))).scalars())
        due = [row for row in part if row.id in with_identities or row.id in with_key]
        if not due or dry_run:
            report.requests += len(due)
            report.request_ids += [row.id for row in due]
            continue
        with vault.engine.begin() as conn:  # audited before the keys go: a crash leaves them for the next run
            for row in due:
                conn.execute(request_identity.delete().where(request_identity.c.request_id == row.id))
                vault.audit.append(conn, at=as_of, actor=actor, action="request.identities_shredded",
                                   controller_id=row.controller_id, subject_id=row.subject_id,
                                   details={"request": row.id, "closed_on": row.closed_at.date().isoformat(),
                                            "accountability_months": months})
        report.keys_destroyed += vault.shred([row.id for row in due])
        report.requests += len(due)
        report.request_ids += [row.id for row in due]
    return report


def record_possible_matches(vault: Vault, request_id: str, store: str, matches: Sequence, *, at: datetime) -> int:
    """Keep what a store's search held back for staff (replacing that store's earlier list, so a
    re-run records the same); returns how many."""
    with vault.engine.begin() as conn:
        conn.execute(possible_match.delete().where(possible_match.c.request_id == request_id,
                                                   possible_match.c.store == store))
        rows = {(m.table[:128], m.key[:200]): m.reason[:500] for m in matches}
        if rows:
            conn.execute(insert(possible_match), [
                {"request_id": request_id, "store": store, "table_name": table, "row_key": key, "reason": reason,
                 "found_at": at} for (table, key), reason in rows.items()])
    return len(rows)


def possible_matches(vault: Vault, request_id: str) -> list[dict]:
    """What the request's searches held back for staff: store, table, key and why."""
    with vault.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(
            select(possible_match.c.store, possible_match.c.table_name, possible_match.c.row_key,
                   possible_match.c.reason).where(possible_match.c.request_id == request_id)
            .order_by(possible_match.c.store, possible_match.c.table_name, possible_match.c.row_key))]

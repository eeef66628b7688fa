"""Enquiries and quotes of prospects, and their immediate purge.

The privacy notice: "If you choose not to become a client/customer, we delete all data after
answering an enquiry", and likewise after a quotation is not accepted. An enquiry closes with an
outcome; once it is answered or its quote declined, the enquiry and its quotes are deleted, and a
prospect left with no records has their data key destroyed, which puts every copy beyond use.
Clients' data, held data (Art. 17(3)(e)) and data under an open request (DPA 2018 s.173) stay.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from include.common.errors import InvalidInput, UnknownRecord
from include.vault.deletion import delete_records, run_in_batches
from include.vault.holds import held, under_open_request
from include.vault.schema import data_subject, record
from include.vault.store import Vault

ENQUIRY = "enquiry"
QUOTE = "quote"
CLOSING_OUTCOMES = ("answered", "declined")  # the prospect did not become a client
OUTCOMES = (*CLOSING_OUTCOMES, "converted")
XCOM_ID_LIMIT = 1000
_OPAQUE_ID = re.compile(r"^[0-9a-f]{32}$")


def check_enquiry_id(value: object, where: str = "enquiry_id") -> str:
    if not isinstance(value, str) or not _OPAQUE_ID.match(value):
        raise InvalidInput(f"{where} must be a 32-character lower-case hex id")
    return value


def check_outcome(value: object, where: str = "outcome") -> str:
    if value not in OUTCOMES:
        raise InvalidInput(f"{where} must be one of {', '.join(OUTCOMES)}, got {value!r}")
    return value


@dataclass(frozen=True)
class OutcomeRecorded:
    enquiry_id: str
    controller_id: str
    outcome: str
    changed: bool


def record_outcome(vault: Vault, enquiry_id: str, outcome: str, *, actor: str,
                   at: datetime) -> OutcomeRecorded:
    """Close an enquiry. Idempotent; a converted enquiry is client data and cannot be reopened."""
    check_enquiry_id(enquiry_id)
    check_outcome(outcome)
    with vault.engine.begin() as conn:
        row = conn.execute(select(record.c.id, record.c.controller_id, record.c.subject_id,
                                  record.c.outcome)
                           .where(record.c.id == enquiry_id, record.c.category == ENQUIRY)
                           .with_for_update()).first()
        if row is None:
            raise UnknownRecord(f"enquiry {enquiry_id} does not exist (never recorded, or already purged)")
        if row.outcome == outcome:
            return OutcomeRecorded(enquiry_id, row.controller_id, outcome, changed=False)
        if row.outcome == "converted":
            raise InvalidInput(f"enquiry {enquiry_id} was converted: its prospect is a client, "
                               f"and it cannot be closed as '{outcome}'")
        # Closing sets the retention end to now: the notice promises deletion after answering.
        end = at if outcome in CLOSING_OUTCOMES else None
        unit = (record.c.id == enquiry_id) | (record.c.parent_id == enquiry_id)
        conn.execute(update(record).where(unit).values(retention_end=end))
        conn.execute(update(record).where(record.c.id == enquiry_id)
                     .values(outcome=outcome, outcome_at=at))
        if outcome == "converted":
            conn.execute(update(data_subject).where(data_subject.c.id == row.subject_id,
                                                    data_subject.c.role == "prospect")
                         .values(role="client"))
        vault.audit.append(conn, at=at, actor=actor, action="enquiry.outcome_recorded",
                           controller_id=row.controller_id, subject_id=row.subject_id,
                           details={"enquiry": enquiry_id, "outcome": outcome})
    return OutcomeRecorded(enquiry_id, row.controller_id, outcome, changed=True)


@dataclass
class PurgeReport:
    dry_run: bool
    enquiries: int = 0
    records: int = 0
    subjects_erased: int = 0
    batches: int = 0
    held_by_legal_hold: int = 0
    held_by_open_request: int = 0
    erased_subject_ids: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts and opaque ids only: safe for XCom and logs."""
        data = asdict(self)
        data["erased_subject_ids"] = self.erased_subject_ids[:XCOM_ID_LIMIT]
        data["erased_subject_ids_truncated"] = len(self.erased_subject_ids) > XCOM_ID_LIMIT
        return data


def _closed_prospect_enquiries():
    return (select(record.c.id)
            .join(data_subject, data_subject.c.id == record.c.subject_id)
            .where(record.c.category == ENQUIRY, record.c.outcome.in_(CLOSING_OUTCOMES),
                   data_subject.c.role == "prospect"))


def _unit_held(now: datetime):
    """The enquiry, or any of its quotes, is under a legal hold."""
    quote = aliased(record)
    return held(record, now) | select(quote.c.id).where(
        quote.c.parent_id == record.c.id, held(quote, now)).exists()


def purgeable_enquiries(now: datetime):
    return _closed_prospect_enquiries().where(~_unit_held(now), ~under_open_request(record))


def purge_closed_enquiries(vault: Vault, *, now: datetime, actor: str, batch_size: int = 500,
                           dry_run: bool = False) -> PurgeReport:
    """Delete closed prospects' enquiries and quotes, one transaction per batch.

    A dry run takes the same path and rolls each batch back, so its figures are exact. Re-running
    finds nothing left to do; a run killed at any point is finished by the next one.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive whole number, got {batch_size!r}")
    report = PurgeReport(dry_run=dry_run)
    with vault.engine.connect() as conn:
        closed = _closed_prospect_enquiries().subquery()
        report.held_by_legal_hold = conn.execute(
            select(func.count()).select_from(record).where(record.c.id.in_(select(closed.c.id)),
                                                           _unit_held(now))).scalar_one()
        report.held_by_open_request = conn.execute(
            select(func.count()).select_from(record).where(record.c.id.in_(select(closed.c.id)),
                                                           ~_unit_held(now),
                                                           under_open_request(record))).scalar_one()
    batches, erased = run_in_batches(
        vault, dry_run=dry_run,
        next_batch=lambda conn, last_id: conn.execute(
            purgeable_enquiries(now).where(record.c.id > last_id)
            .order_by(record.c.id).limit(batch_size)).all(),
        apply_batch=lambda conn, rows: _purge_batch(vault, conn, [r.id for r in rows], report, now, actor,
                                                    dry_run))
    report.batches = batches
    report.erased_subject_ids = erased
    report.subjects_erased = len(erased)
    return report


def _purge_batch(vault: Vault, conn, enquiry_ids: list[str], report: PurgeReport, now: datetime,
                 actor: str, dry_run: bool) -> list[str]:
    """Delete one batch inside the caller's transaction; returns the subjects left with nothing."""
    rows = conn.execute(select(record.c.id, record.c.subject_id, record.c.controller_id).where(
        (record.c.id.in_(enquiry_ids)) | (record.c.parent_id.in_(enquiry_ids)))).all()
    unit_ids = [r.id for r in rows]
    erased = delete_records(conn, unit_ids, at=now).erased_subject_ids
    report.enquiries += len(enquiry_ids)
    report.records += len(unit_ids)
    if not dry_run:
        by_controller: dict[str, dict[str, set[str]]] = {}
        for r in rows:
            entry = by_controller.setdefault(r.controller_id, {"enquiries": set(), "subjects": set()})
            if r.id in enquiry_ids:
                entry["enquiries"].add(r.id)
            entry["subjects"].add(r.subject_id)
        for controller_id, entry in sorted(by_controller.items()):
            vault.audit.append(conn, at=now, actor=actor, action="enquiry_purge.batch",
                               controller_id=controller_id, details={
                                   "enquiries": sorted(entry["enquiries"]),
                                   "records_deleted": sum(1 for r in rows
                                                          if r.controller_id == controller_id),
                                   "subjects_erased": sorted(entry["subjects"] & set(erased))})
    return erased

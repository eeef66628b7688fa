"""The retention sweep: delete records whose controller's retention rule has run out.

For each controller and category, the instruction in effect on the run's date gives the rule, so a
run for a past date (a backfill) applies the rule of that date, and an instruction that shortens a
period applies from the next run. A record is deleted once its rule's end has passed, unless a legal
hold covers it (Art. 17(3)(e): its end is then the later of the two) or its subject has an open
request (DPA 2018 s.173). The enquiry rule belongs to the enquiry purge; server logs are files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import ColumnElement, and_, func, select

from include.common.errors import InvalidInput, VaultError
from include.common.reports import write_csv, write_html, write_json
from include.policies.instructions import Instruction, InstructionBook, ServerLogLocation
from include.stores.logindex import LogIndex
from include.stores.serverlogs import apply_to_directory
from include.vault.deletion import delete_records, run_in_batches
from include.vault.holds import held, under_open_request
from include.vault.schema import record
from include.vault.store import Vault

NOT_SWEPT = ("server_log",)  # files, handled by the server-log retention


def expired(instr: Instruction, as_of: datetime) -> ColumnElement[bool] | None:
    """Records of the instruction's controller and category whose rule has ended by as_of."""
    rule = instr.retention
    if not rule.scheduled:
        return None
    column = record.c[rule.column]
    boundary = (column <= rule.last_expired_day(as_of, instr.year_end) if rule.column == "relates_to"
                else column < rule.cutoff(as_of, instr.year_end))
    return and_(record.c.controller_id == instr.controller_id, record.c.category == instr.category,
                boundary)


@dataclass
class CategoryOutcome:
    controller_id: str
    category: str
    rule: str
    given_on: str
    deleted: int = 0
    subjects_erased: int = 0
    kept_by_legal_hold: int = 0
    kept_by_open_request: int = 0


@dataclass
class SweepReport:
    as_of: str
    dry_run: bool
    outcomes: list[CategoryOutcome] = field(default_factory=list)
    no_instruction: list[str] = field(default_factory=list)  # "controller/category" with records
    batches: int = 0

    @property
    def deleted(self) -> int:
        return sum(o.deleted for o in self.outcomes)

    def summary(self) -> dict:
        """Counts and names only: safe for XCom and logs."""
        return {"as_of": self.as_of, "dry_run": self.dry_run, "deleted": self.deleted,
                "subjects_erased": sum(o.subjects_erased for o in self.outcomes),
                "batches": self.batches, "no_instruction": self.no_instruction,
                "by_category": [asdict(o) for o in self.outcomes]}

    @classmethod
    def from_summary(cls, summary: dict) -> SweepReport:
        """The report again from its summary, as a later task gets it through XCom."""
        return cls(as_of=summary["as_of"], dry_run=summary["dry_run"], no_instruction=summary["no_instruction"],
                   batches=summary["batches"], outcomes=[CategoryOutcome(**o) for o in summary["by_category"]])


def _check_as_of(as_of: datetime) -> None:
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise InvalidInput("as_of must be a time with its zone (UTC)")


def sweep_expired(vault: Vault, *, controller_id: str, as_of: datetime, actor: str,
                  batch_size: int = 1000, dry_run: bool = False,
                  book: InstructionBook | None = None) -> SweepReport:
    """Delete one controller's expired records, one transaction per batch; idempotent."""
    _check_as_of(as_of)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive whole number, got {batch_size!r}")
    book = book or vault.instruction_book()
    report = SweepReport(as_of=as_of.isoformat(), dry_run=dry_run)
    with vault.engine.connect() as conn:
        present = set(conn.execute(select(record.c.category).distinct()
                                   .where(record.c.controller_id == controller_id)).scalars())
    for category in sorted(present - set(NOT_SWEPT)):
        instr = book.in_effect(controller_id, category, as_of)
        if instr is None:
            report.no_instruction.append(f"{controller_id}/{category}")
            continue
        condition = expired(instr, as_of)
        if condition is None:
            continue
        outcome = CategoryOutcome(controller_id, category, instr.retention.text, instr.given_on.isoformat())
        deletable = and_(condition, ~held(record, as_of), ~under_open_request(record))

        def next_batch(conn, last_id, deletable=deletable):
            return conn.execute(select(record.c.id, record.c.subject_id)
                                .where(deletable, record.c.id > last_id)
                                .order_by(record.c.id).limit(batch_size)).all()

        def apply(conn, rows, outcome=outcome):
            done = delete_records(conn, [r.id for r in rows], at=as_of,
                                  subject_ids={r.subject_id for r in rows})
            outcome.deleted += done.records
            if not dry_run:
                vault.audit.append(conn, at=as_of, actor=actor, action="retention.batch_deleted",
                                   controller_id=controller_id,
                                   details={"category": outcome.category, "records": done.records,
                                            "subjects_erased": len(done.erased_subject_ids),
                                            "rule_given_on": outcome.given_on})
            return done.erased_subject_ids

        batches, erased = run_in_batches(vault, dry_run=dry_run, next_batch=next_batch, apply_batch=apply)
        outcome.subjects_erased = len(erased)
        # Counted after the deletions (a dry run deletes nothing, so the counts are the same), over
        # the few expired records left: each is kept by a hold or a request.
        with vault.engine.connect() as conn:
            outcome.kept_by_legal_hold = conn.execute(select(func.count()).select_from(record).where(
                condition, held(record, as_of))).scalar_one()
            outcome.kept_by_open_request = conn.execute(select(func.count()).select_from(record).where(
                condition, ~held(record, as_of), under_open_request(record))).scalar_one()
        report.batches += batches
        report.outcomes.append(outcome)
    return report


# -- what is retained -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Cohort:
    expires_on: date | None  # the first day it may be deleted; None while its end is unknown
    records: int


@dataclass(frozen=True)
class RetentionLine:
    controller_id: str
    category: str
    purpose: str | None
    legal_basis: str | None
    rule: str | None
    given_by: str | None
    given_on: str | None
    records: int
    oldest: datetime | None
    next_expiry: date | None
    cohorts: tuple[Cohort, ...]
    held: int


def retention_report(vault: Vault, *, as_of: datetime,
                     book: InstructionBook | None = None) -> list[RetentionLine]:
    """Per controller and category: the rule in effect, the record count, the oldest record, the
    next expiry, and the records grouped by the day they expire (the cohorts)."""
    book = book or vault.instruction_book()
    lines = []
    with vault.engine.connect() as conn:
        groups = conn.execute(
            select(record.c.controller_id, record.c.category, func.count(), func.min(record.c.created_at))
            .group_by(record.c.controller_id, record.c.category)
            .order_by(record.c.controller_id, record.c.category)).all()
        for controller_id, category, count, oldest in groups:
            instr = book.in_effect(controller_id, category, as_of)
            cohorts: dict[date | None, int] = {}
            if instr is not None:
                rule = instr.retention
                column = record.c[rule.column]
                day = func.date(column) if rule.column != "relates_to" else column
                for value, n in conn.execute(
                        select(day, func.count()).where(record.c.controller_id == controller_id,
                                                        record.c.category == category)
                        .group_by(day)):
                    if isinstance(value, str):  # SQLite's date() returns text
                        value = date.fromisoformat(value)
                    if isinstance(value, datetime):
                        value = value.date()
                    key = None if value is None else rule.end_of_day(value, instr.year_end).date()
                    cohorts[key] = cohorts.get(key, 0) + n
            held_count = conn.execute(select(func.count()).select_from(record).where(
                record.c.controller_id == controller_id, record.c.category == category,
                held(record, as_of))).scalar_one()
            future = sorted(d for d in cohorts if d is not None and d > as_of.date())
            lines.append(RetentionLine(
                controller_id, category,
                instr.purpose if instr else None, instr.legal_basis if instr else None,
                instr.retention.text if instr else None, instr.given_by if instr else None,
                instr.given_on.isoformat() if instr else None, count, oldest,
                future[0] if future else None,
                tuple(Cohort(d, n) for d, n in sorted(cohorts.items(),
                                                      key=lambda kv: (kv[0] is None, kv[0] or date.min))),
                held_count))
    return lines


# -- server logs ----------------------------------------------------------------------------------

@dataclass
class LogSweepReport:
    controller_id: str
    as_of: str
    rule: str | None = None
    action: str | None = None
    cutoff: str | None = None
    locations: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return asdict(self)


def sweep_server_logs(vault: Vault, *, controller_id: str, locations: list[ServerLogLocation],
                      log_root: Path, as_of: datetime, actor: str,
                      book: InstructionBook | None = None) -> LogSweepReport:
    """Anonymise or drop one controller's log lines older than its instruction's limit; every file
    is left with a current index by client address, for the controller's requests."""
    _check_as_of(as_of)
    book = book or vault.instruction_book()
    report = LogSweepReport(controller_id, as_of.isoformat())
    instr = book.in_effect(controller_id, "server_log", as_of)
    if instr is None or not locations:
        return report
    if instr.log_action is None:  # a server_log instruction is validated to have one when it is recorded
        raise VaultError(f"controller '{controller_id}': the recorded server_log instruction has no log_action")
    cutoff = instr.retention.cutoff(as_of, instr.year_end)
    report.rule, report.action, report.cutoff = instr.retention.text, instr.log_action, cutoff.isoformat()
    index = LogIndex(vault.indexer, controller_id)
    for location in locations:
        done = apply_to_directory(location.path(log_root), location.pattern, cutoff=cutoff, action=instr.log_action,
                                  index=index)
        report.locations.append({"directory": location.directory, "files": len(done.files),
                                 "files_rewritten": done.files_rewritten,
                                 "lines_changed": done.lines_changed,
                                 "stale_temporaries_removed": done.stale_temporaries_removed})
        if done.files_rewritten:
            with vault.engine.begin() as conn:
                vault.audit.append(conn, at=as_of, actor=actor, action=f"server_log.{instr.log_action}",
                                   controller_id=controller_id,
                                   details={"location": location.directory[:100].replace(" ", "_"),
                                            "files": done.files_rewritten, "lines": done.lines_changed,
                                            "cutoff": cutoff.date().isoformat()})
    return report


# -- reports --------------------------------------------------------------------------------------

DELETION_COLUMNS = ("controller_id", "category", "rule", "given_on", "deleted", "subjects_erased",
                    "kept_by_legal_hold", "kept_by_open_request")
RETAINED_COLUMNS = ("controller_id", "category", "purpose", "legal_basis", "rule", "given_by", "given_on",
                    "records", "oldest", "next_expiry", "held", "cohorts")


def _retained_rows(lines: list[RetentionLine]) -> list[dict]:
    return [{**asdict(line), "oldest": line.oldest.isoformat() if line.oldest else None,
             "next_expiry": line.next_expiry.isoformat() if line.next_expiry else None,
             "cohorts": [{"expires_on": c.expires_on.isoformat() if c.expires_on else None,
                          "records": c.records} for c in line.cohorts]} for line in lines]


def write_retention_reports(directory: Path, *, as_of: datetime, dry_run: bool,
                            sweeps: list[SweepReport], lines: list[RetentionLine]) -> dict[str, str]:
    """retention.json, deletions.csv, retained.csv and retention.html in directory; their paths."""
    deletions = [asdict(o) for sweep in sweeps for o in sweep.outcomes]
    no_instruction = sorted({item for sweep in sweeps for item in sweep.no_instruction})
    retained = _retained_rows(lines)
    directory = Path(directory)
    paths = {
        "json": write_json(directory / "retention.json", {
            "as_of": as_of.isoformat(), "dry_run": dry_run, "deletions": deletions,
            "no_instruction": no_instruction, "retained": retained}),
        "deletions_csv": write_csv(directory / "deletions.csv", deletions, DELETION_COLUMNS),
        "retained_csv": write_csv(directory / "retained.csv",
                                  [{**r, "cohorts": "; ".join(f"{c['expires_on'] or 'on its event'}: "
                                                              f"{c['records']}" for c in r["cohorts"])}
                                   for r in retained], RETAINED_COLUMNS),
        "html": write_html(directory / "retention.html", "retention.html.j2", as_of=as_of.isoformat(),
                           dry_run=dry_run, deletions=deletions, no_instruction=no_instruction,
                           retained=retained),
    }
    return {kind: str(path) for kind, path in paths.items()}

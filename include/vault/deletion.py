"""Deleting records in batches, and crypto-shredding the subjects left with none.

Every deletion (the enquiry purge, the retention sweep, an erasure) goes through here: one
transaction per batch; a dry run takes the same path and rolls back, so its figures are exact.
Writers and deleters of a subject serialise on the subject's row (`Vault.add_records` locks it too),
so a record written while its subject's last records are deleted is never left without a key:
either the writer waits and then finds the subject erased (and starts a new one), or the deleter
waits and then finds the new record (and erases nobody). A subject left with no records is marked
erased and listed in key_to_destroy in the same transaction; its key is destroyed after the commit,
and a run killed in between leaves the list for the next run to finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, and_, delete, insert, select, update

from include.vault.keystore import chunks
from include.vault.schema import data_subject, key_to_destroy, record, record_field
from include.vault.store import Vault, lock_subjects


@dataclass(frozen=True)
class DeletedRecords:
    records: int
    erased_subject_ids: list[str]


def delete_records(conn: Connection, record_ids: Sequence[str], *, at: datetime,
                   subject_ids: Iterable[str] | None = None) -> DeletedRecords:
    """Delete the records and their fields in the caller's transaction; mark subjects left with no
    records as erased (their keys are the caller's to shred, after this returns). subject_ids, when
    the caller already has them, are the records' subjects."""
    subjects: set[str] = set(subject_ids or ())
    if subject_ids is None:
        for part in chunks(list(record_ids)):
            subjects.update(conn.execute(select(record.c.subject_id).distinct()
                                         .where(record.c.id.in_(part))).scalars())
    ordered = sorted(subjects)
    lock_subjects(conn, ordered)
    deleted = 0
    for part in chunks(list(record_ids)):
        conn.execute(delete(record_field).where(record_field.c.record_id.in_(part)))
        deleted += conn.execute(delete(record).where(record.c.id.in_(part))).rowcount
    remaining: set[str] = set()
    for part in chunks(ordered):  # a locking read: the latest records, whatever this transaction saw before
        remaining.update(conn.execute(select(record.c.subject_id).where(record.c.subject_id.in_(part))
                                      .with_for_update(read=True)).scalars())
    erased = [sid for sid in ordered if sid not in remaining]
    for part in chunks(erased):
        conn.execute(update(data_subject).where(and_(data_subject.c.id.in_(part),
                                                     data_subject.c.erased_at.is_(None)))
                     .values(erased_at=at))
        pending = set(conn.execute(select(key_to_destroy.c.subject_id)
                                   .where(key_to_destroy.c.subject_id.in_(part))).scalars())
        if rows := [{"subject_id": sid, "since": at} for sid in part if sid not in pending]:
            conn.execute(insert(key_to_destroy), rows)
    return DeletedRecords(deleted, erased)


def run_in_batches(vault: Vault, *, next_batch: Callable[[Connection, str], Sequence[Row]],
                   apply_batch: Callable[[Connection, Sequence[Row]], list[str]],
                   dry_run: bool) -> tuple[int, list[str]]:
    """Repeat next_batch (rows after the last id seen, in id order, the id first in each row) and
    apply_batch (returns the subjects to shred) until no rows are left. Returns the batch count and
    every shredded subject."""
    last_id = ""
    batches = 0
    shredded: list[str] = []
    vault.destroy_pending_keys()  # a killed run's deletions, committed before their keys went
    while True:
        with vault.engine.connect() as conn:
            transaction = conn.begin()
            try:
                rows = next_batch(conn, last_id)
                if not rows:
                    transaction.rollback()
                    return batches, shredded
                erased = apply_batch(conn, rows)
                if dry_run:
                    transaction.rollback()
                else:
                    transaction.commit()
                    vault.destroy_pending_keys(erased)
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
        batches += 1
        shredded.extend(erased)
        last_id = rows[-1][0]

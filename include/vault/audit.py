"""The hash-chained audit log (Art. 28(3)(h)): every action on personal data, provably complete.

Each event's hash is an HMAC, under a key derived from the keyring, of the previous hash and the
event's canonical JSON: editing, deleting or reordering events breaks the chain, and nobody without
the keyring can forge a replacement chain. Events hold opaque ids and counts only: `details` refuses
anything that looks like plain personal data.

The chain runs from event 1, without a gap, to the event the head row (MAC'd too) names. An event
with a sequence outside it (below 1, or a second event with one sequence) is no part of it: `verify`
reports it, and returns only events of the chain to callers that trust what events say (the
disclosure log's digests, include/duties/disclosures.py).

The anchor. The head row is in the vault, so whoever can write the vault can delete the newest
events and put back an older head row from a backup: the chain and the head then agree. The head's
sequence and hash are therefore also kept, MAC'd, in the key store, a database apart from the vault:
the anchor. It only moves up, and only to a head whose chain runs through the event it names.
`verify` requires that event to be in the chain with the hash anchored: a tail truncated with an
older head put back, or a vault restored from a backup alone, is reported.

What holds across a crash. Events are appended inside the caller's vault transaction; the anchor is
written in the key store after that transaction has committed (the dialect's commit is wrapped:
SQLAlchemy Core has no after-commit event), to the head it committed.
- The anchor never names an event the vault has not committed: a crash, a failed commit or a
  rollback before the anchor's write leaves the anchor where it was, so an intact log is never
  reported as tampered with. It is never ahead of the vault.
- A crash (or an unreachable key store) between the vault's commit and the anchor's write leaves the
  anchor behind the head, by the events of that one commit. `verify` accepts an anchor behind the
  head as long as the event it names is in the chain with its hash. Until the next commit that
  appends, or the next clean `verify`, moves the anchor up, those newest events are protected by
  the chain and the head row alone (as before there was an anchor): deleting them and putting back
  the head before them is not detected.
- Once a commit that appended has returned without a logged warning, the anchor covers its events.
- Once the vault's chain no longer runs through the anchored event (a rollback), the anchor is not
  moved again, and the evidence stays until it is looked at.
Not covered: both databases put back to backups taken together (an honest restore looks the same),
and anyone who holds the keyring.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from include.common.errors import AuditError
from include.crypto.keyring import Keyring
from include.vault.schema import audit_event, audit_head

if TYPE_CHECKING:
    from include.vault.keystore import KeyStore

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# Opaque ids, enum words, dates, counts: no '@', no spaces, nothing long.
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:/+-]{0,100}$")
_VERIFY_CHUNK = 5000
_LISTED = 20  # events outside the chain named one by one; past that, counted
# In a connection's info: (log, seq, hash) of the head its open transaction appended, anchored once
# it commits.
_PENDING = "gdpr.audit.anchor_after_commit"
_WRAPPING = threading.Lock()


def _check_safe(value: object, where: str) -> None:
    if isinstance(value, bool | int | float) or value is None:
        return
    if isinstance(value, str):
        if not _SAFE_TEXT.match(value):
            raise AuditError(f"audit detail {where} is not an opaque id, count or code word; "
                             "the audit log holds no free text")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_safe(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_safe(item, f"{where}.{key}")
        return
    raise AuditError(f"audit detail {where} has unsupported type {type(value).__name__}")


def _canonical(seq: int, at: datetime, actor: str, action: str, controller_id: str | None,
               subject_id: str | None, details: str) -> bytes:
    return json.dumps([seq, at.isoformat(), actor, action, controller_id, subject_id, details],
                      separators=(",", ":"), ensure_ascii=True).encode()


def _missing(first: int, last: int) -> str:
    return f"event {first} is missing (deleted)" if first == last else f"events {first}..{last} are missing (deleted)"


def _report_outside(conn: Connection, result: AuditVerification) -> None:
    """Events with a sequence below 1: no part of the chain."""
    outside = conn.execute(select(audit_event.c.seq).where(audit_event.c.seq < 1)
                           .order_by(audit_event.c.seq)).scalars().all()
    result.problems += [f"event {seq}: its sequence is outside the chain, which runs from event 1 "
                        "(forged, or moved out of it)" for seq in outside[:_LISTED]]
    if len(outside) > _LISTED:
        result.problems.append(f"and {len(outside) - _LISTED} more events with a sequence outside the chain")


def _pending_info(dbapi_connection) -> dict | None:
    """The pool's info dict of a connection (a raw DBAPI connection, which has none, gives None)."""
    info = getattr(dbapi_connection, "info", None)
    return info if isinstance(info, dict) else None


def _anchor_after_commit(engine: Engine) -> None:
    """Make the engine's commits anchor the head their transaction appended, once the database has
    committed it; a rollback forgets it. Every transaction on a connection ends in the dialect's
    do_commit or do_rollback (the pool's reset on return included), and the pool clears the info of a
    connection it replaces, so nothing pending outlives its transaction. Only attributes of the
    dialect are set (atomically), nothing another thread iterates: it is safe to do mid-flight."""
    dialect = engine.dialect
    with _WRAPPING:
        if getattr(dialect, "_gdpr_audit_anchor", False):
            return
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection) -> None:
            commit(dbapi_connection)
            info = _pending_info(dbapi_connection)
            pending = info.pop(_PENDING, None) if info is not None else None
            if pending is not None:
                audit, seq, hash_ = pending
                audit._raise_anchor(seq, hash_)

        def do_rollback(dbapi_connection) -> None:
            if (info := _pending_info(dbapi_connection)) is not None:
                info.pop(_PENDING, None)
            rollback(dbapi_connection)

        # Instance attributes, shadowing the dialect's methods for this engine alone.
        vars(dialect).update(do_commit=do_commit, do_rollback=do_rollback, _gdpr_audit_anchor=True)


@dataclass
class AuditVerification:
    events: int = 0
    problems: list[str] = field(default_factory=list)
    # (seq, action, details) of the events of the chain whose action was asked for: only these vouch
    # for anything.
    collected: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    HEAD_ID = 1

    def __init__(self, keyring: Keyring, anchor: KeyStore | None = None) -> None:
        """anchor: the key store that keeps the anchor (see the module's docstring); without one,
        nothing is anchored or checked against an anchor."""
        self._key = keyring.derive("audit-chain")
        self._anchor_key = keyring.derive("audit-anchor")
        self._anchor = anchor

    def _hash(self, prev_hash: str, payload: bytes) -> str:
        return hmac.new(self._key, prev_hash.encode() + payload, hashlib.sha256).hexdigest()

    def _head_mac(self, seq: int, hash_: str) -> str:
        return hmac.new(self._key, f"head\x1f{seq}\x1f{hash_}".encode(), hashlib.sha256).hexdigest()

    def _anchor_mac(self, seq: int, hash_: str) -> str:
        return hmac.new(self._anchor_key, f"anchor\x1f{seq}\x1f{hash_}".encode(), hashlib.sha256).hexdigest()

    def initialise(self, conn: Connection) -> None:
        """The head row of a new log; and, if the key store has no anchor yet (a new vault, or one from
        before anchors), the head as it stands anchored: it is trusted from then on."""
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash, audit_head.c.mac)
                            .where(audit_head.c.id == self.HEAD_ID)).first()
        if head is None:
            conn.execute(insert(audit_head).values(id=self.HEAD_ID, seq=0, hash=GENESIS,
                                                   mac=self._head_mac(0, GENESIS)))
            seq, hash_ = 0, GENESIS
        elif hmac.compare_digest(self._head_mac(head.seq, head.hash), head.mac):
            seq, hash_ = head.seq, head.hash
        else:
            return  # an altered head is not anchored: `verify` reports it
        if self._anchor is not None and self._anchor.audit_anchor() is None:
            self._anchor.raise_audit_anchor(seq, hash_, self._anchor_mac(seq, hash_))

    def append(self, conn: Connection, *, at: datetime, actor: str, action: str,
               controller_id: str | None = None, subject_id: str | None = None,
               details: dict | None = None) -> int:
        """Append one event inside the caller's transaction, so it commits with the action; the anchor
        follows once that transaction has committed."""
        details = details or {}
        _check_safe(details, "details")
        for name, value in (("actor", actor), ("action", action), ("controller_id", controller_id),
                            ("subject_id", subject_id)):
            _check_safe(value, name)
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                            .where(audit_head.c.id == self.HEAD_ID).with_for_update()).first()
        if head is None:
            raise AuditError("the audit log has no head row: run `gdpr-admin vault init`")
        seq = head.seq + 1
        text = json.dumps(details, sort_keys=True, separators=(",", ":"))
        hash_ = self._hash(head.hash, _canonical(seq, at, actor, action, controller_id, subject_id, text))
        follows = self._anchor is not None and self._follows_anchor(self._anchor, conn, head.seq, head.hash)
        conn.execute(insert(audit_event).values(
            seq=seq, at=at, actor=actor, action=action, controller_id=controller_id,
            subject_id=subject_id, details=text, prev_hash=head.hash, hash=hash_))
        conn.execute(update(audit_head).where(audit_head.c.id == self.HEAD_ID)
                     .values(seq=seq, hash=hash_, mac=self._head_mac(seq, hash_)))
        if self._anchor is not None:
            _anchor_after_commit(conn.engine)
            if follows:
                conn.info[_PENDING] = (self, seq, hash_)
            else:
                conn.info.pop(_PENDING, None)
        return seq

    def _follows_anchor(self, keystore: KeyStore, conn: Connection, seq: int, hash_: str) -> bool:
        """Whether the chain ending at event seq (the head the caller holds locked) runs through the
        anchored event, so that the anchor may move up to what this transaction commits."""
        pending = conn.info.get(_PENDING)
        if pending is not None and pending[0] is self and pending[1:] == (seq, hash_):
            return True  # this transaction's own previous event, already checked
        try:
            anchor = keystore.audit_anchor()
        except SQLAlchemyError as exc:
            log.warning("audit anchor not read from the key store (%s): this transaction's events are "
                        "anchored by the next commit that appends", type(exc).__name__)
            return False
        if anchor is None:
            return True  # the first anchor: a vault from before anchors, not yet initialised again
        if not hmac.compare_digest(self._anchor_mac(anchor.seq, anchor.hash), anchor.mac):
            follows = False
        elif anchor.seq >= seq:
            follows = (anchor.seq, anchor.hash) == (seq, hash_)
        elif anchor.seq == 0:
            follows = anchor.hash == GENESIS
        else:  # a locking read: the latest committed row, whatever snapshot the transaction holds
            follows = conn.execute(select(audit_event.c.hash).where(audit_event.c.seq == anchor.seq)
                                   .with_for_update(read=True)).scalar() == anchor.hash
        if not follows:
            log.warning("the vault's audit log does not run through event %d, anchored in the key store: "
                        "the anchor is left as it is; run `gdpr-admin audit verify`", anchor.seq)
        return follows

    def _raise_anchor(self, seq: int, hash_: str) -> None:
        """Move the anchor up to a committed head. A failure is logged, not raised: the vault has
        committed, and the anchor stays behind until the next commit that appends, or a clean
        verification, moves it."""
        if self._anchor is None:
            return  # without a key store nothing is anchored
        try:
            self._anchor.raise_audit_anchor(seq, hash_, self._anchor_mac(seq, hash_))
        except Exception as exc:
            log.warning("audit anchor not moved up to event %d (%s): it stays behind the vault's head until "
                        "the next commit that appends", seq, type(exc).__name__)

    def _read_anchor(self, keystore: KeyStore, result: AuditVerification) -> Row | None:
        try:
            anchor = keystore.audit_anchor()
        except SQLAlchemyError as exc:
            result.problems.append(f"the audit anchor could not be read from the key store ({type(exc).__name__}): "
                                   "is it reachable, and initialised (`gdpr-admin vault init`)?")
            return None
        if anchor is None:
            result.problems.append("the key store holds no audit anchor (deleted, or the vault predates anchors: "
                                   "`gdpr-admin vault init` anchors the log as it stands)")
        elif not hmac.compare_digest(self._anchor_mac(anchor.seq, anchor.hash), anchor.mac):
            result.problems.append("the audit anchor in the key store was altered")
            return None
        return anchor

    def verify(self, conn: Connection, *, collect: Collection[str] = ()) -> AuditVerification:
        """Check every event, the head row, and the head against the anchor in the key store.

        The events of the actions in `collect` that are part of the chain (in sequence, content
        matching its hash, following the event before, not past the head) are returned in
        `collected`; an event outside the chain vouches for nothing.

        Give it a connection with no transaction open: the anchor is read first, then the vault in one
        snapshot (REPEATABLE READ on PostgreSQL and MariaDB; SQLite's transaction), so an anchor moved
        up by a commit meanwhile is never ahead of what is read. A clean verification moves an anchor
        left behind (by a crash) up to the head.
        """
        result = AuditVerification()
        anchor = self._read_anchor(self._anchor, result) if self._anchor is not None else None
        if conn.dialect.name in ("postgresql", "mysql", "mariadb") and not conn.in_transaction():
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        head = conn.execute(select(audit_head).where(audit_head.c.id == self.HEAD_ID)).first()
        head_ok = head is not None and hmac.compare_digest(self._head_mac(head.seq, head.hash), head.mac)
        trusted = head if head_ok else None  # the head row, if its MAC holds
        _report_outside(conn, result)
        last, prev_hash, anchored = self._walk_chain(conn, result, set(collect),
                                                     trusted.seq if trusted is not None else None, anchor)
        if head is None:
            result.problems.append("the head row is missing")
        elif trusted is None:
            result.problems.append("the head row was altered")
        elif trusted.seq != last or trusted.hash != prev_hash:
            result.problems.append(f"the head names event {trusted.seq} but the log ends at event {last} "
                                   "(newest events deleted or replaced)")
        if anchor is not None:
            self._check_anchor(result, anchor, anchored, trusted, last)
        return result

    def _walk_chain(self, conn: Connection, result: AuditVerification, wanted: set[str], head_seq: int | None,
                    anchor: Row | None) -> tuple[int, str, str | None]:
        """Check the events in sequence from event 1, collecting those wanted up to the head (if it is
        trusted). Returns the last event's sequence and hash, and the hash of the anchored event (None if
        it was not met)."""
        anchored = GENESIS if anchor is not None and anchor.seq == 0 else None
        expected_seq, prev_hash, last = 1, GENESIS, 0
        while True:
            rows = conn.execute(select(audit_event).where(audit_event.c.seq >= expected_seq)
                                .order_by(audit_event.c.seq).limit(_VERIFY_CHUNK)).all()
            for row in rows:
                if row.seq < expected_seq:  # the sequence again: impossible while it is the primary key
                    result.problems.append(f"event {row.seq} appears more than once: no copy is in the chain")
                    result.collected = [c for c in result.collected if c[0] != row.seq]
                    continue
                if row.seq != expected_seq:
                    result.problems.append(_missing(expected_seq, row.seq - 1))
                linked = row.prev_hash == prev_hash
                if not linked:
                    result.problems.append(f"event {row.seq}: does not follow the event before it "
                                           "(deleted, inserted or reordered)")
                payload = _canonical(row.seq, row.at, row.actor, row.action, row.controller_id,
                                     row.subject_id, row.details)
                genuine = hmac.compare_digest(self._hash(row.prev_hash, payload), row.hash)
                if not genuine:
                    result.problems.append(f"event {row.seq}: content does not match its hash (edited)")
                if genuine and linked and row.action in wanted and not (head_seq is not None and row.seq > head_seq):
                    result.collected.append((row.seq, row.action, row.details))
                if anchor is not None and row.seq == anchor.seq:
                    anchored = row.hash
                prev_hash, expected_seq, last = row.hash, row.seq + 1, row.seq
                result.events += 1
            if len(rows) < _VERIFY_CHUNK:
                return last, prev_hash, anchored

    def _check_anchor(self, result: AuditVerification, anchor: Row, anchored: str | None, trusted: Row | None,
                      last: int) -> None:
        """The anchored event must be in the chain, with the hash anchored; a clean log moves the anchor up."""
        end = trusted.seq if trusted is not None else last
        if anchor.seq > end:
            result.problems.append(
                f"{_missing(end + 1, anchor.seq)}: the key store's audit anchor names event {anchor.seq}, "
                f"but the vault's log ends at event {end} (an older head put back, or the vault restored "
                "from a backup without the key store)")
        elif anchored is None:
            result.problems.append(f"event {anchor.seq}, which the key store anchors, is missing")
        elif anchored != anchor.hash:
            result.problems.append(f"event {anchor.seq} is not the event the key store anchors (the log "
                                   "was put back to an older state and written again)")
        elif result.ok and trusted is not None and anchor.seq < trusted.seq:  # ok: the head is trusted
            self._raise_anchor(trusted.seq, trusted.hash)

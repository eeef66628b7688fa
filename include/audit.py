"""The hash-chained audit log (Art. 28(3)(h)): every action on personal data, provably complete.

Each event's hash is an HMAC, under a key derived from the keyring, of the previous hash and the
event's canonical JSON: editing, deleting or reordering events breaks the chain, and nobody without
the keyring can forge a replacement chain. The head row (MAC'd too) catches removal of the newest
events. Events hold opaque ids and counts only: `details` refuses anything that looks like plain
personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from include.crypto.keyring import Keyring
from include.errors import AuditError
from include.vault.schema import audit_event, audit_head

GENESIS = "0" * 64
# Opaque ids, enum words, dates, counts: no '@', no spaces, nothing long.
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:/+-]{0,100}$")
_VERIFY_CHUNK = 5000


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


@dataclass
class AuditVerification:
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    HEAD_ID = 1

    def __init__(self, keyring: Keyring) -> None:
        self._key = keyring.derive("audit-chain")

    def _hash(self, prev_hash: str, payload: bytes) -> str:
        return hmac.new(self._key, prev_hash.encode() + payload, hashlib.sha256).hexdigest()

    def _head_mac(self, seq: int, hash_: str) -> str:
        return hmac.new(self._key, f"head\x1f{seq}\x1f{hash_}".encode(), hashlib.sha256).hexdigest()

    def initialise(self, conn: Connection) -> None:
        if conn.execute(select(audit_head.c.id)).first() is None:
            conn.execute(insert(audit_head).values(id=self.HEAD_ID, seq=0, hash=GENESIS,
                                                   mac=self._head_mac(0, GENESIS)))

    def append(self, conn: Connection, *, at: datetime, actor: str, action: str,
               controller_id: str | None = None, subject_id: str | None = None,
               details: dict | None = None) -> int:
        """Append one event inside the caller's transaction, so it commits with the action."""
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
        conn.execute(insert(audit_event).values(
            seq=seq, at=at, actor=actor, action=action, controller_id=controller_id,
            subject_id=subject_id, details=text, prev_hash=head.hash, hash=hash_))
        conn.execute(update(audit_head).where(audit_head.c.id == self.HEAD_ID)
                     .values(seq=seq, hash=hash_, mac=self._head_mac(seq, hash_)))
        return seq

    def verify(self, conn: Connection) -> AuditVerification:
        result = AuditVerification()
        expected_seq, prev_hash, last = 1, GENESIS, 0
        while True:
            rows = conn.execute(select(audit_event).where(audit_event.c.seq >= expected_seq)
                                .order_by(audit_event.c.seq).limit(_VERIFY_CHUNK)).all()
            for row in rows:
                if row.seq != expected_seq:
                    result.problems.append(f"events {expected_seq}..{row.seq - 1} are missing")
                if row.prev_hash != prev_hash:
                    result.problems.append(f"event {row.seq}: does not follow the event before it "
                                           "(deleted, inserted or reordered)")
                payload = _canonical(row.seq, row.at, row.actor, row.action, row.controller_id,
                                     row.subject_id, row.details)
                if not hmac.compare_digest(self._hash(row.prev_hash, payload), row.hash):
                    result.problems.append(f"event {row.seq}: content does not match its hash (edited)")
                prev_hash, expected_seq, last = row.hash, row.seq + 1, row.seq
                result.events += 1
            if len(rows) < _VERIFY_CHUNK:
                break
        head = conn.execute(select(audit_head).where(audit_head.c.id == self.HEAD_ID)).first()
        if head is None:
            result.problems.append("the head row is missing")
        elif not hmac.compare_digest(self._head_mac(head.seq, head.hash), head.mac):
            result.problems.append("the head row was altered")
        elif head.seq != last or head.hash != prev_hash:
            result.problems.append(f"the head names event {head.seq} but the log ends at event {last} "
                                   "(newest events deleted or replaced)")
        return result

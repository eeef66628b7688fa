"""Controllers' instructions recorded in the vault: each file's controller registered (or its new
name or region recorded), its contact and case prefix kept up to date, and its new instructions
added to their history, which is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from include.common.errors import InvalidInput
from include.common.yamlfiles import LoadedFile
from include.policies.instructions import InstructionEntry, InstructionFile, ReviewGates
from include.vault.schema import controller_detail, controller_review, instruction
from include.vault.store import Vault


def _digest(controller_id: str, year_end: str, entry: InstructionEntry) -> str:
    canonical = json.dumps({"controller": controller_id, "financial_year_end": year_end,
                            **entry.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class SyncResult:
    registered: int = 0  # controllers new to the vault
    changed: int = 0  # controllers whose name or region changed
    recorded: int = 0  # instructions
    unchanged: int = 0  # instructions already recorded

    def __add__(self, other: SyncResult) -> SyncResult:
        return SyncResult(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def record_instructions(vault: Vault, files: Iterable[LoadedFile], *, actor: str,
                        at: datetime) -> SyncResult:
    """Register each file's controller, or record its new name or region, and record its new
    instructions, all the files in one transaction (for one transaction per file, as `gdpr-admin
    instructions load` does, pass one file at a time). Idempotent and audited; history cannot be
    rewritten."""
    result = SyncResult()
    with vault.engine.begin() as conn:
        for loaded in files:
            result += _record_file(vault, conn, loaded, actor=actor, at=at)
    return result


def _record_file(vault: Vault, conn, loaded: LoadedFile, *, actor: str, at: datetime) -> SyncResult:
    content = loaded.content
    result = SyncResult()
    if vault.add_controller(content.controller, content.name, content.region, actor=actor, at=at,
                            conn=conn):
        result.registered = 1
    elif vault.change_controller(content.controller, name=content.name, region=content.region,
                                 actor=actor, at=at, conn=conn):
        result.changed = 1
    _record_details(vault, conn, content, actor=actor, at=at)
    _record_review(vault, conn, content, actor=actor, at=at)
    recorded = {(r.category, r.given_on): r for r in conn.execute(
        select(instruction).where(instruction.c.controller_id == content.controller))}
    for index, entry in enumerate(content.instructions):
        digest = _digest(content.controller, content.financial_year_end, entry)
        previous = recorded.get((entry.category, entry.given_on))
        if previous is not None:
            if previous.digest != digest:
                raise InvalidInput(
                    f"{loaded.path}:{loaded.line_of('instructions', index)}: instructions.{index}: "
                    f"the instruction for '{entry.category}' given on {entry.given_on} differs "
                    f"from the one recorded on {previous.recorded_at:%Y-%m-%d}; history is kept "
                    "as given: add a new instruction with a later given_on")
            result.unchanged += 1
            continue
        conn.execute(insert(instruction).values(
            controller_id=content.controller, category=entry.category, given_on=entry.given_on,
            purpose=entry.purpose, legal_basis=entry.legal_basis.value,
            retention=entry.retention, given_by=entry.given_by,
            financial_year_end=content.financial_year_end,
            log_action=entry.log_action.value if entry.log_action else None,
            source=loaded.path.name[:100], digest=digest, recorded_at=at))
        vault.audit.append(conn, at=at, actor=actor, action="instruction.recorded",
                           controller_id=content.controller,
                           details={"category": entry.category,
                                    "given_on": entry.given_on.isoformat(), "digest": digest[:16]})
        result.recorded += 1
    return result


def _record_details(vault: Vault, conn, content: InstructionFile, *, actor: str, at: datetime) -> None:
    """The controller's contact and case prefix as its file now gives them (not a history: the
    package and new case references use the current ones); a change is audited."""
    wanted = {"case_prefix": content.prefix, "contact": content.contact}
    key = controller_detail.c.controller_id == content.controller
    current = conn.execute(select(controller_detail.c.case_prefix, controller_detail.c.contact).where(key)).first()
    if current is not None and dict(current._mapping) == wanted:
        return
    if current is None:
        conn.execute(insert(controller_detail).values(controller_id=content.controller, recorded_at=at, **wanted))
    else:
        conn.execute(update(controller_detail).where(key).values(recorded_at=at, **wanted))
    vault.audit.append(conn, at=at, actor=actor, action="controller.details", controller_id=content.controller,
                       details={"case_prefix": content.prefix, "contact": content.contact is not None})


def _record_review(vault: Vault, conn, content: InstructionFile, *, actor: str, at: datetime) -> None:
    """The controller's review gates as its file now gives them; a change is audited."""
    wanted = content.review.model_dump()
    key = controller_review.c.controller_id == content.controller
    current = conn.execute(select(controller_review.c.identity, controller_review.c.package,
                                  controller_review.c.erasure).where(key)).first()
    if wanted == ({k: bool(v) for k, v in current._mapping.items()} if current else ReviewGates().model_dump()):
        return  # as recorded (no row: no gates)
    if current is None:
        conn.execute(insert(controller_review).values(controller_id=content.controller, **wanted))
    else:
        conn.execute(update(controller_review).where(key).values(**wanted))
    vault.audit.append(conn, at=at, actor=actor, action="controller.review", controller_id=content.controller,
                       details=wanted)

"""Erasure (Art. 17) in each kind of store, in two halves: plan, from a search made before anything
changes, what erasing the person means in the store; then apply the plan. The plan is kept
(encrypted, in the request's work directory), so a retried task applies the same plan, and applying
it twice changes nothing.

- The vault: a subject's records go, except those kept under a legal reason (a legal hold, or a
  legal obligation such as the 7-year accounting rule while it runs). With nothing kept the data key
  is destroyed (crypto-shredding: every backup copy is beyond use too). With records kept, they are
  re-encrypted under a new data key of a new, restricted subject, and the old key is destroyed, so
  that the erased records' copies in backups are unreadable all the same.
- A SQL store: each table as its data map says: delete the rows, mask the named columns, or retain
  them under the named legal reason, until the date the controller's instruction sets.
- Server logs: the lines from the person's IP addresses are anonymised or dropped, as the
  controller's instruction for its logs says.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import DBAPIError

from include.datamap.connectors import IN_CHUNK, IdentitySet, LogConnector, SqlConnector, VaultConnector
from include.datamap.model import DataMap, ErasureAction
from include.errors import StoreUnavailable
from include.files import remove_stale_temporaries
from include.policies.holds import held
from include.policies.instructions import InstructionBook
from include.requests.redaction import full_names
from include.requests.restriction import restrict
from include.serverlogs import apply_to_hosts
from include.vault.deletion import delete_records
from include.vault.keystore import chunks
from include.vault.schema import data_subject, record, record_field
from include.vault.store import Vault

LEGAL_HOLD = "Art. 17(3)(e): kept under a legal hold, for legal claims"
ERASED = "[erased]"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- the vault ---------------------------------------------------------------------------------

def retained_subject_id(subject_id: str) -> str:
    """The subject that takes over a subject's kept records (the same on every retry)."""
    return hashlib.sha256(f"retained:{subject_id}".encode()).hexdigest()[:32]


def plan_vault_erasure(vault: Vault, controller_id: str, identities: IdentitySet, *, at: datetime) -> dict:
    book = InstructionBook.load(vault)
    subjects = []
    with vault.engine.connect() as conn:
        for subject_id in sorted(VaultConnector(vault, controller_id).subjects(identities)):
            rows = conn.execute(select(record.c.id, record.c.category, record.c.retention_end,
                                       held(record, at).label("held"))
                                .where(record.c.subject_id == subject_id).order_by(record.c.id)).all()
            deleted, kept = [], []
            for row in rows:
                instruction = book.in_effect(controller_id, row.category, at)
                if row.held:
                    reason = LEGAL_HOLD
                elif (instruction and instruction.legal_basis == "legal_obligation"
                      and (row.retention_end is None or row.retention_end > at)):
                    reason = f"Art. 17(3)(b): kept for a legal obligation, {instruction.purpose}"
                else:
                    deleted.append(row.id)
                    continue
                kept.append({"table": row.category, "key": row.id, "reason": reason,
                             "until": _iso(row.retention_end)})
            kept_by = (None if not kept else subject_id if not deleted else retained_subject_id(subject_id))
            subjects.append({"subject_id": subject_id, "delete": deleted, "kept": kept, "kept_by": kept_by})
    return {"subjects": subjects}


def apply_vault_erasure(vault: Vault, plan: dict, *, controller_id: str, request_id: str, actor: str,
                        at: datetime) -> dict:
    deleted = shredded = 0
    for subject in plan["subjects"]:
        subject_id, kept_by = subject["subject_id"], subject["kept_by"]
        if kept_by not in (None, subject_id):
            _move_kept_records(vault, subject_id, kept_by, [k["key"] for k in subject["kept"]], at)
        with vault.engine.begin() as conn:
            gone = delete_records(conn, subject["delete"], at=at, subject_ids=[subject_id])
            deleted += gone.records
            if kept_by:
                restrict(vault, conn, controller_id=controller_id, subject_id=kept_by, grounds="kept_after_erasure",
                         request_id=request_id, actor=actor, at=at)
            vault.audit.append(conn, at=at, actor=actor, action="erasure.vault", controller_id=controller_id,
                               subject_id=subject_id, details={
                                   "request": request_id, "deleted": gone.records, "kept": len(subject["kept"]),
                                   "kept_by": kept_by})
        if kept_by != subject_id:
            # After the commit, so kept records are never left under a destroyed key; a retry of a
            # task killed in between destroys it then.
            shredded += vault.shred([subject_id])
    return {"done": [{"table": "records", "action": "delete", "records": deleted},
                     {"table": "data keys", "action": "destroy", "records": shredded}]}


def _move_kept_records(vault: Vault, subject_id: str, kept_by: str, record_ids: list[str], at: datetime) -> None:
    """Re-encrypt the kept records under kept_by's new data key (idempotent)."""
    if not vault.keystore.fetch([kept_by]):
        vault.keystore.create([kept_by], at)
    with vault.engine.begin() as conn:
        moving = [rid for part in chunks(record_ids) for rid in conn.execute(
            select(record.c.id).where(record.c.id.in_(part), record.c.subject_id == subject_id)).scalars()]
        if not moving:
            return
        if not conn.execute(select(data_subject.c.id).where(data_subject.c.id == kept_by)).first():
            role, controller_id = conn.execute(select(data_subject.c.role, data_subject.c.controller_id)
                                               .where(data_subject.c.id == subject_id)).one()
            conn.execute(insert(data_subject).values(id=kept_by, controller_id=controller_id, role=role,
                                                     created_at=at))
        ciphers = vault.ciphers([subject_id, kept_by])
        old, new = ciphers[subject_id], ciphers[kept_by]
        for part in chunks(moving):
            for rid, name, blob in conn.execute(select(record_field.c.record_id, record_field.c.name,
                                                       record_field.c.ciphertext)
                                                .where(record_field.c.record_id.in_(part))).all():
                conn.execute(update(record_field).where(record_field.c.record_id == rid, record_field.c.name == name)
                             .values(ciphertext=new.encrypt(rid, name, old.decrypt(rid, name, blob))))
            conn.execute(update(record).where(record.c.id.in_(part)).values(subject_id=kept_by))


# -- SQL stores --------------------------------------------------------------------------------

def parents_first(data_map: DataMap) -> list[str]:
    """The map's tables, each after every table it references."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for target in data_map.tables[name].references.values():
                visit(target)
            ordered.append(name)
    for name in data_map.tables:
        visit(name)
    return ordered


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        return date.fromisoformat(value[:10])
    return None


def _dated(data_map: DataMap, found: dict, table: str, row: dict) -> date | None:
    """The date a row relates to: its own dated_by column, or that of the row it references."""
    spec = data_map.tables[table]
    if spec.dated_by:
        return _day(row[spec.dated_by])
    for column, parent in spec.references.items():
        if (parent_row := found[parent].get(row[column])) is not None:
            return _dated(data_map, found, parent, parent_row[0])
    return None


def plan_sql_erasure(connector: SqlConnector, identities: IdentitySet, book: InstructionBook, *,
                     controller_id: str, at: datetime) -> dict:
    data_map = connector.map
    instructions = {name: book.require(controller_id, spec.instruction, at,
                                       where=f"{connector.loaded.path}: table {name}: ")
                    for name, spec in data_map.tables.items()}
    found, known = connector.found_rows(identities)
    tables, kept = {}, []
    for name in parents_first(data_map):
        if not found[name]:
            continue
        spec = data_map.tables[name]
        keys = sorted(found[name], key=str)
        tables[name] = {"action": spec.erasure.action.value, "keys": keys}
        if spec.erasure.action == ErasureAction.retain:
            for key in keys:
                day = _dated(data_map, found, name, found[name][key][0])
                until = instructions[name].retention.end_of_day(day, instructions[name].year_end) if day else None
                kept.append({"table": name, "key": str(key), "reason": spec.erasure.reason, "until": _iso(until)})
    mentions = sorted({written for kind in ("email", "phone") for value in known.values(kind)
                       for written in known.written(kind, value)}
                      | full_names(row for rows in found.values() for row, _ in rows.values()))
    return {"tables": tables, "kept": kept, "identities": known.to_json(), "mentions": mentions,
            "scrub": _mentioned_in_free_text(connector, mentions, tables)}


def _mentioned_in_free_text(connector: SqlConnector, mentions: list[str], tables: dict) -> list[list]:
    """[table, column, keys] of other rows whose free text mentions the person (a note that names
    them): a scan of those columns, which only an erasure pays for."""
    scrub = []
    try:
        with connector.engine.connect() as conn:
            for name, spec in connector.map.tables.items():
                table, own = connector.tables[name], tables.get(name, {})
                for column, col in spec.columns.items():
                    if not col.free_text or not mentions:
                        continue
                    if own.get("action") == ErasureAction.delete or column in spec.erasure.mask:
                        skip = set(own.get("keys", []))  # the person's own rows lose the whole value
                    else:
                        skip = set()
                    keys = [key for part in chunks(mentions, IN_CHUNK) for key in conn.execute(
                        select(table.c[spec.primary_key]).where(or_(*(table.c[column].icontains(m, autoescape=True)
                                                                      for m in part)))).scalars()
                        if key not in skip]
                    if keys:
                        scrub.append([name, column, sorted(set(keys), key=str)])
    except DBAPIError as exc:
        raise StoreUnavailable(f"store '{connector.map.store}' cannot be searched: {type(exc.orig).__name__}") from None
    return scrub


def apply_sql_erasure(connector: SqlConnector, plan: dict) -> dict:
    """Apply the plan in one transaction: masks, then deletions from the last table referenced."""
    data_map = connector.map
    done = []
    try:
        connector.reflect()
        with connector.engine.begin() as conn:
            for name in reversed(parents_first(data_map)):
                if (step := plan["tables"].get(name)) is None:
                    continue
                spec, table = data_map.tables[name], connector.tables[name]
                key = table.c[spec.primary_key]
                for part in chunks(step["keys"], IN_CHUNK):
                    if step["action"] == ErasureAction.delete:
                        conn.execute(delete(table).where(key.in_(part)))
                    elif step["action"] == ErasureAction.mask:
                        conn.execute(update(table).where(key.in_(part)).values(**spec.erasure.mask))
                done.append({"table": name, "action": step["action"], "records": len(step["keys"])})
            for name, column, keys in plan["scrub"]:
                table, spec = connector.tables[name], data_map.tables[name]
                key = table.c[spec.primary_key]
                for part in chunks(keys, IN_CHUNK):
                    for row_key, text in conn.execute(select(key, table.c[column]).where(key.in_(part))).all():
                        if isinstance(text, str) and text != (scrubbed := _scrubbed(text, plan["mentions"])):
                            conn.execute(update(table).where(key == row_key).values({column: scrubbed}))
                done.append({"table": name, "action": f"remove mentions from {column}", "records": len(keys)})
    except DBAPIError as exc:
        raise StoreUnavailable(f"store '{data_map.store}' cannot be changed: {type(exc.orig).__name__}") from None
    return {"done": list(reversed(done))}


def _scrubbed(text: str, mentions: list[str]) -> str:
    for mention in sorted(mentions, key=len, reverse=True):
        text = re.sub(re.escape(mention), ERASED, text, flags=re.IGNORECASE)
    return text


# -- server logs -------------------------------------------------------------------------------

def plan_log_erasure(connector: LogConnector, identities: IdentitySet, book: InstructionBook, *,
                     controller_id: str, at: datetime) -> dict:
    instruction = book.require(controller_id, connector.map.logs.instruction, at,
                               where=f"{connector.loaded.path}: logs: ")
    return {"hosts": identities.values("ip"), "action": instruction.log_action}


def apply_log_erasure(connector: LogConnector, plan: dict, progress: dict,
                      save_progress: Callable[[dict], None]) -> dict:
    """Rewrite each file in turn; progress ({file: lines changed}) is saved after each, so that a
    retry after a kill still reports the files done before it."""
    if not connector.directory.is_dir():
        raise StoreUnavailable(f"store '{connector.map.store}': log directory {connector.directory} does not exist")
    remove_stale_temporaries(connector.directory)  # a killed rewrite's leftovers; its original is intact
    for path in sorted(p for p in connector.directory.glob(connector.map.logs.pattern) if p.is_file()):
        changed = apply_to_hosts(path, plan["hosts"], action=plan["action"]).lines_changed
        progress[path.name] = progress.get(path.name, 0) + changed
        save_progress(progress)
    return {"done": [{"table": name, "action": plan["action"], "records": lines}
                     for name, lines in sorted(progress.items()) if lines]}

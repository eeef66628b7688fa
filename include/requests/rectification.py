"""Rectification (Art. 16): a corrected identity (email, phone) written to every store holding the
old one, planned from a search before anything changes and applied by primary key, as erasures are.

In the vault the new value is encrypted under the subject's key with a new blind index, so neither
the old value nor its blind index is left; an old email on the suppression list carries its
suppression over to the new one. In a SQL store, the identity columns and key-value entries of the
person's rows that hold the old value get the new one. A restricted subject's data is not rectified
until the restriction is lifted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from include.datamap.connectors import IN_CHUNK, IdentitySet, SqlConnector, VaultConnector
from include.errors import InvalidInput, StoreUnavailable
from include.identities import NORMALISERS
from include.marketing import is_suppressed, suppress
from include.policies.instructions import InstructionBook
from include.requests.restriction import require_unrestricted
from include.vault.keystore import chunks
from include.vault.schema import record, record_field
from include.vault.store import Vault


def _same(kind: str, value: object, old: str) -> bool:
    try:
        return value is not None and NORMALISERS[kind](value) == old
    except InvalidInput:
        return False


def plan_vault_rectification(vault: Vault, controller_id: str, identities: IdentitySet, *, old: dict[str, str],
                             actor: str, at: datetime) -> dict:
    """Restricted (audited) if a subject found is restricted."""
    subjects = sorted(VaultConnector(vault, controller_id).subjects(identities))
    require_unrestricted(vault, controller_id=controller_id, subject_ids=subjects, operation="rectification",
                         actor=actor, at=at)
    fields = []
    with vault.engine.connect() as conn:
        for part in chunks(subjects):
            for rid, name, lookup in conn.execute(
                    select(record_field.c.record_id, record_field.c.name, record_field.c.lookup)
                    .join(record, record.c.id == record_field.c.record_id)
                    .where(record.c.subject_id.in_(part), record_field.c.name.in_(list(old)))
                    .order_by(record_field.c.record_id)):
                if lookup == vault.indexer.digest(name, controller_id, old[name]):
                    fields.append([rid, name])
    return {"fields": fields}


def apply_vault_rectification(vault: Vault, plan: dict, *, controller_id: str, old: dict[str, str],
                              new: dict[str, str], request_id: str, actor: str, at: datetime) -> dict:
    with vault.engine.begin() as conn:
        subjects = dict(conn.execute(select(record.c.id, record.c.subject_id).where(
            record.c.id.in_([rid for rid, _ in plan["fields"]]))).all()) if plan["fields"] else {}
        ciphers = vault.ciphers(list(dict.fromkeys(subjects.values())))
        for rid, name in plan["fields"]:
            conn.execute(update(record_field).where(record_field.c.record_id == rid, record_field.c.name == name)
                         .values(ciphertext=ciphers[subjects[rid]].encrypt(rid, name, new[name]),
                                 lookup=vault.indexer.digest(name, controller_id, new[name])))
        vault.audit.append(conn, at=at, actor=actor, action="rectification.vault", controller_id=controller_id,
                           details={"request": request_id, "fields": len(plan["fields"]), "kinds": sorted(new)})
    if "email" in new and is_suppressed(vault, controller_id, old["email"]):
        suppress(vault, controller_id=controller_id, email=new["email"], actor=actor, at=at, request_id=request_id)
    return {"done": [{"table": "records", "action": "rectify", "records": len({rid for rid, _ in plan["fields"]})}]}


def plan_sql_rectification(connector: SqlConnector, identities: IdentitySet, book: InstructionBook, *,
                           old: dict[str, str], controller_id: str, at: datetime) -> dict:
    """[table, column, key column or None, primary keys] of each set of values to change."""
    data_map = connector.map
    found, _known = connector.found_rows(identities)
    changes = []
    for name, rows in found.items():
        spec = data_map.tables[name]
        if rows:
            book.require(controller_id, spec.instruction, at, where=f"{connector.loaded.path}: table {name}: ")
        for column, col in spec.columns.items():
            if col.identity in old:
                keys = sorted((k for k, (row, _) in rows.items()
                               if _same(col.identity, row[column], old[col.identity])), key=str)
                if keys:
                    changes.append([name, column, str(col.identity), keys])
        if spec.key_value:
            for key_name, kind in spec.key_value.identities.items():
                keys = sorted((k for k, (row, _) in rows.items() if row[spec.key_value.key] == key_name
                               and _same(kind, row[spec.key_value.value], old.get(kind, ""))), key=str)
                if kind in old and keys:
                    changes.append([name, spec.key_value.value, str(kind), keys])
    return {"changes": changes}


def apply_sql_rectification(connector: SqlConnector, plan: dict, *, new: dict[str, str]) -> dict:
    data_map = connector.map
    done: dict[str, int] = {}
    try:
        connector.reflect()
        with connector.engine.begin() as conn:
            for name, column, kind, keys in plan["changes"]:
                table = connector.tables[name]
                key = table.c[data_map.tables[name].primary_key]
                for part in chunks(keys, IN_CHUNK):
                    conn.execute(update(table).where(key.in_(part)).values({column: new[kind]}))
                done[name] = done.get(name, 0) + len(keys)
    except DBAPIError as exc:
        raise StoreUnavailable(f"store '{data_map.store}' cannot be changed: {type(exc.orig).__name__}") from None
    return {"done": [{"table": name, "action": "rectify", "records": n} for name, n in done.items()]}

"""Direct marketing: a controller's mailing list, and the suppression list that always wins over it.

The mailing list is vault records of category `marketing` (the subscriber's email and name), so the
controller's instruction for that category must allow it. An objection to direct marketing
(Art. 21(3)) puts the person's email on the suppression list as its blind index, never the address;
the entry survives the person's erasure, and every export skips them, even if they sign up again.
Restricted subjects are left out of an export too, and the refusal is audited.

An export is a CSV sealed like an access package, delivered to the controller's outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from include.common.files import write_atomically
from include.common.reports import csv_bytes
from include.crypto.sealing import seal
from include.vault.restriction import refuse_restricted, require_unrestricted
from include.vault.schema import KEPT_AFTER_ERASURE, record, suppression
from include.vault.store import NewRecord, Vault

CATEGORY = "marketing"


def subscribe(vault: Vault, *, controller_id: str, email: str, name: str, source: str, actor: str,
              at: datetime) -> str:
    """Add a person to the controller's mailing list (a vault record); returns the record's id.
    Refused (Restricted, audited) while the person asked for their data to be restricted, or an
    objection is pending: a sign-up is processing. (Records kept after an erasure are restricted too,
    and an export leaves out whoever they belong to.)"""
    require_unrestricted(vault, controller_id=controller_id, operation="marketing_signup", actor=actor, at=at,
                         subject_ids=vault.find_subjects(controller_id, "email", email),
                         ignoring=(KEPT_AFTER_ERASURE,))
    return vault.add_records([NewRecord(
        controller_id=controller_id, category=CATEGORY, purpose="sending the controller's newsletter",
        source=source, fields={"email": email, "name": name}, role="customer", created_at=at)], actor=actor)[0]


@dataclass(frozen=True)
class MarketingExport:
    path: Path
    exported: int
    suppressed: int
    restricted: int


def export_mailing_list(vault: Vault, *, controller_id: str, outbox: Path, actor: str,
                        at: datetime) -> MarketingExport:
    """Seal the controller's mailing list, without suppressed or restricted people, into its outbox."""
    vault.instruction_book().require(controller_id, CATEGORY, at, where=f"marketing export for '{controller_id}': ")
    with vault.engine.connect() as conn:
        ids = list(conn.execute(select(record.c.id).where(record.c.controller_id == controller_id,
                                                          record.c.category == CATEGORY)
                                .order_by(record.c.id)).scalars())
        suppressed = set(conn.execute(select(suppression.c.email_lookup)
                                      .where(suppression.c.controller_id == controller_id)).scalars())
    views = vault.read_records(ids)
    restricted = set(refuse_restricted(vault, controller_id=controller_id,
                                       subject_ids=[v.subject_id for v in views],
                                       operation="marketing_export", actor=actor, at=at))
    rows, skipped, seen = [], 0, set()
    for view in views:
        lookup = vault.indexer.digest("email", controller_id, view.fields["email"])
        if lookup in suppressed:
            skipped += 1
        elif view.subject_id not in restricted and lookup not in seen:
            seen.add(lookup)
            rows.append({"email": view.fields["email"], "name": view.fields.get("name", "")})
    export_id = f"marketing-{controller_id}-{at:%Y%m%dT%H%M%S}"
    path = Path(outbox) / controller_id / f"{export_id}.gdprpkg"
    with vault.keystore.wrapping() as keyring:  # a key rotation waits until the export is written
        sealed, _secret = seal({"mailing-list.csv": csv_bytes(rows, ["email", "name"])}, keyring=keyring,
                               reference=export_id)
        write_atomically(path, sealed, mode=0o640)
    vault.record_event("marketing.exported", actor=actor, at=at, controller_id=controller_id,
                       details={"export": export_id, "exported": len(rows), "suppressed": skipped,
                                "restricted": len(restricted)})
    return MarketingExport(path, len(rows), skipped, len(restricted))

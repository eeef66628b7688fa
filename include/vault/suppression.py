"""The suppression list: people who objected to direct marketing (Art. 21(3)), by their email's blind
index, never the address. An entry survives the person's erasure, and every mailing-list export skips
them, even if they sign up again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from include.vault.schema import suppression
from include.vault.store import Vault


def suppress(vault: Vault, *, controller_id: str, email: str, actor: str, at: datetime,
             request_id: str | None = None) -> bool:
    """Put the email on the controller's suppression list; False if it already was (idempotent)."""
    lookup = vault.indexer.digest("email", controller_id, email)
    with vault.engine.begin() as conn:
        if conn.execute(select(suppression.c.email_lookup).where(
                suppression.c.controller_id == controller_id, suppression.c.email_lookup == lookup)).first():
            return False
        conn.execute(insert(suppression).values(controller_id=controller_id, email_lookup=lookup,
                                                request_id=request_id, added_at=at))
        vault.audit.append(conn, at=at, actor=actor, action="marketing.suppressed", controller_id=controller_id,
                           details={"request": request_id})
    return True


def is_suppressed(vault: Vault, controller_id: str, email: str) -> bool:
    lookup = vault.indexer.digest("email", controller_id, email)
    with vault.engine.connect() as conn:
        return conn.execute(select(suppression.c.email_lookup).where(
            suppression.c.controller_id == controller_id, suppression.c.email_lookup == lookup)).first() is not None

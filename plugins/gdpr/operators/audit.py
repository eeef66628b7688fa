"""Checks the hash-chained audit log, and the disclosure log against it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Context

from gdpr.operators.base import BaseVaultOperator
from include.errors import AuditError

if TYPE_CHECKING:
    from include.vault.store import Vault


class VerifyAuditLogOperator(BaseVaultOperator):
    """Fails when any audit event was edited, deleted or reordered, or a logged disclosure no longer
    matches its audit event."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.disclosures import verify_disclosures

        with vault.engine.connect() as conn:
            result = vault.audit.verify(conn)
        if problems := result.problems + verify_disclosures(vault):
            raise AuditError(f"audit log broken in {len(problems)} place(s): " + "; ".join(problems[:20]))
        self.log.info("Audit log intact: %d events", result.events)
        return {"events": result.events}

"""Checks the hash-chained audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Context

from gdpr.operators.base import BaseVaultOperator
from include.errors import AuditError

if TYPE_CHECKING:
    from include.vault.store import Vault


class VerifyAuditLogOperator(BaseVaultOperator):
    """Fails when any audit event was edited, deleted or reordered."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        with vault.engine.connect() as conn:
            result = vault.audit.verify(conn)
        if not result.ok:
            raise AuditError(f"audit log broken in {len(result.problems)} place(s): "
                             + "; ".join(result.problems[:20]))
        self.log.info("Audit log intact: %d events", result.events)
        return {"events": result.events}

"""Checks the hash-chained audit log, and the disclosure log against it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Context

from gdpr.operators.base import BaseVaultOperator
from include.common.errors import AuditError

if TYPE_CHECKING:
    from include.vault.store import Vault


class VerifyAuditLogOperator(BaseVaultOperator):
    """Fails when any audit event was edited, deleted or reordered, an event lies outside the chain,
    the newest events were cut off (the head no longer reaches the anchor in the key store), or a
    logged disclosure no longer matches its audit event in the chain."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.duties.disclosures import verify_audit_log

        result, disclosure_problems = verify_audit_log(vault)
        if problems := result.problems + disclosure_problems:
            raise AuditError(f"audit log broken in {len(problems)} place(s): " + "; ".join(problems[:20]))
        self.log.info("Audit log intact: %d events", result.events)
        return {"events": result.events}

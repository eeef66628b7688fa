"""Rotates the key-encryption key and destroys the retired ones nothing needs (crypto-shredding
that holds for copies of erased keys left in table files, logs and backups)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from gdpr.hooks.vault import VaultHook


class RotateKekOperator(BaseOperator):
    """A new active KEK; every live data key and sealed file rewrapped under it; retired KEKs that
    nothing is wrapped under any more destroyed. Needs the keyring as a file (a keyring kept in a
    secrets backend is rotated there).

    :param vault_conn_id: the Airflow connection of the vault.
    """

    template_fields = ("vault_conn_id",)

    def __init__(self, *, vault_conn_id: str = VaultHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault_conn_id = vault_conn_id

    def execute(self, context: Context) -> dict:
        from include.settings import WorkflowSettings
        from include.vault.rotation import rotate_kek

        workflow = WorkflowSettings()
        result = rotate_kek(VaultHook(vault_conn_id=self.vault_conn_id).settings(),
                            actor=f"airflow:{self.dag_id}.{self.task_id}",
                            sealed_dirs=[workflow.outbox_dir, workflow.disclosures_inbox / "processed"])
        self.log.info("KEK %d -> %d: %d data keys and %d sealed files rewrapped; destroyed %s; kept %s",
                      result.old_version, result.new_version, result.rewrapped, result.resealed,
                      result.destroyed, result.kept)
        return {"active_version": result.new_version, "rewrapped": result.rewrapped,
                "resealed": result.resealed, "destroyed": result.destroyed, "kept": result.kept}

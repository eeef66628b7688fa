"""Rotates the key-encryption key and destroys the retired ones nothing needs (crypto-shredding
that holds for copies of erased keys left in table files, logs and backups)."""

from __future__ import annotations

from airflow.sdk import Context

from gdpr.operators.base import GdprOperator


class RotateKekOperator(GdprOperator):
    """A new active KEK; every live data key and sealed file rewrapped under it; retired KEKs that
    nothing is wrapped under any more destroyed. Needs the keyring as a file (a keyring kept in a
    secrets backend is rotated there).

    :param vault_conn_id: the Airflow connection of the vault.
    """

    def run(self, context: Context) -> dict:
        from include.vault.rotation import rotate_kek

        workflow = self.workflow
        result = rotate_kek(self.hook.settings(), actor=self.actor,
                            sealed_dirs=[workflow.outbox_dir, workflow.disclosures_inbox / "processed"])
        self.log.info("KEK %d -> %d: %d data keys and %d sealed files rewrapped; destroyed %s; kept %s",
                      result.old_version, result.new_version, result.rewrapped, result.resealed,
                      result.destroyed, result.kept)
        return {"active_version": result.new_version, "rewrapped": result.rewrapped,
                "resealed": result.resealed, "destroyed": result.destroyed, "kept": result.kept}

"""The vault hook: opens the encrypted vault described by an Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from include.admin.provider import VAULT_CONNECTION
from include.common.errors import InvalidInput

if TYPE_CHECKING:
    from include.common.settings import VaultSettings
    from include.vault.store import Vault


class VaultHook(BaseHook):
    """
    Connection extras: ``database_url`` (the vault), ``keystore_url`` (the data keys, another
    database), ``keyring_path``; or the keyring's JSON itself in the connection's password.

    :param vault_conn_id: the Airflow connection of the vault.
    """

    conn_name_attr = "vault_conn_id"
    default_conn_name = "gdpr_vault_default"
    conn_type = VAULT_CONNECTION  # its form's fields: include/admin/provider.py
    hook_name = "GDPR Vault"

    def __init__(self, vault_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault_conn_id = vault_conn_id

    def settings(self) -> VaultSettings:
        from include.common.settings import VaultSettings  # the core loads at run time, not at DAG parse

        conn = self.get_connection(self.vault_conn_id)
        extra = conn.extra_dejson
        if not extra.get("database_url"):
            raise InvalidInput(f"connection '{self.vault_conn_id}': extra 'database_url' is missing")
        if conn.password:
            mask_secret(conn.password)
        values = {"vault_url": extra["database_url"], "keystore_url": extra.get("keystore_url"),
                  "keyring_secret": conn.password or None}
        if extra.get("keyring_path"):
            values["keyring_path"] = extra["keyring_path"]
        try:
            return VaultSettings(**values)
        except ValueError as exc:
            raise InvalidInput(f"connection '{self.vault_conn_id}': {exc}") from None

    def get_conn(self) -> Vault:
        """An open vault; use it as a context manager so its connections are released."""
        from include.vault.store import Vault

        return Vault.open(self.settings())

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.get_conn() as vault:
                counts = vault.counts()
        except Exception as exc:  # the UI shows the reason instead of a stack trace
            return False, str(exc)
        return True, f"vault reachable, keyring matches; {counts['records']} records"

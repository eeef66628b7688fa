"""The base of operators that work on the vault."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gdpr.hooks.vault import VaultHook
from include.errors import InvalidInput, Restricted, UnknownRecord

if TYPE_CHECKING:
    from include.vault.store import Vault


class BaseVaultOperator(BaseOperator):
    """Opens the vault for ``execute_on_vault`` and closes it after, whatever happens.

    :param vault_conn_id: the Airflow connection of the vault.
    """

    template_fields: Sequence[str] = ("vault_conn_id",)

    def __init__(self, *, vault_conn_id: str = VaultHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault_conn_id = vault_conn_id

    @cached_property
    def hook(self) -> VaultHook:
        return VaultHook(vault_conn_id=self.vault_conn_id)

    @property
    def actor(self) -> str:
        """Who acts, in the audit log: the workflow and task."""
        return f"airflow:{self.dag_id}.{self.task_id}"

    def execute(self, context: Context) -> Any:
        try:
            with self.hook.get_conn() as vault:
                return self.execute_on_vault(vault, context)
        except (InvalidInput, Restricted, UnknownRecord) as refused:
            # Bad input or a refusal: a retry would get the same answer, so fail at once.
            raise AirflowFailException(str(refused)) from refused

    def execute_on_vault(self, vault: Vault, context: Context) -> Any:
        raise NotImplementedError

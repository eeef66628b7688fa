"""The base of the project's operators, and of those that work on the vault."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from gdpr.hooks.vault import VaultHook
from include.common.errors import GdprError

if TYPE_CHECKING:
    from include.common.settings import WorkflowSettings
    from include.vault.store import Vault


def run_date(context: Context) -> datetime:
    """The instant a run acts as of: its logical date (a backfill's past day), else when it ran."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return datetime.fromtimestamp(when.timestamp(), UTC)


class GdprOperator(BaseOperator):
    """The project's operators: the vault's connection, the settings, who acts, and retry or fail
    decided by the error (``GdprError.retryable``).

    :param vault_conn_id: the Airflow connection of the vault.
    """

    template_fields: Sequence[str] = ("vault_conn_id",)

    def __init__(self, *, vault_conn_id: str = VaultHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vault_conn_id = vault_conn_id

    @cached_property
    def hook(self) -> VaultHook:
        return VaultHook(vault_conn_id=self.vault_conn_id)

    @cached_property
    def workflow(self) -> WorkflowSettings:
        """The workflow's settings, read from the environment once per task."""
        from include.common.settings import WorkflowSettings

        return WorkflowSettings()

    @property
    def actor(self) -> str:
        """Who acts, in the audit log: the workflow and task."""
        return f"airflow:{self.dag_id}.{self.task_id}"

    def execute(self, context: Context) -> Any:
        try:
            return self.run(context)
        except GdprError as error:
            if error.retryable:  # a store away now: Airflow retries the task
                raise
            # A wrong keyring, a broken audit chain, bad input, a refusal: a retry gets the same answer.
            raise AirflowFailException(str(error)) from error

    def run(self, context: Context) -> Any:
        raise NotImplementedError


class BaseVaultOperator(GdprOperator):
    """Opens the vault for ``execute_on_vault`` and closes it after, whatever happens."""

    def run(self, context: Context) -> Any:
        with self.hook.get_conn() as vault:
            return self.execute_on_vault(vault, context)

    def execute_on_vault(self, vault: Vault, context: Context) -> Any:
        raise NotImplementedError

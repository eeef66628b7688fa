"""Operators of access requests: register or select, plan, search one store, package.

XCom carries request ids, store names, counts and paths; never a person's identities or data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context
from airflow.sdk.log import mask_secret

from gdpr.hooks.store import ClientStoreHook
from gdpr.operators.base import BaseVaultOperator
from gdpr.operators.retention import run_date
from include.errors import InvalidInput

if TYPE_CHECKING:
    from include.requests.access import AccessSettings
    from include.requests.gather import Stores
    from include.vault.store import Vault


def access_settings() -> AccessSettings:
    from include.requests.access import AccessSettings
    from include.settings import WorkflowSettings

    workflow = WorkflowSettings()
    return AccessSettings(work_dir=workflow.work_dir, outbox_dir=workflow.outbox_dir,
                          recipients_file=workflow.recipients_file)


def stores_for(vault: Vault):
    """controller_id -> Stores, with SQL stores reached through their Airflow connections."""
    from include.datamap.model import load_data_maps
    from include.requests.gather import Stores
    from include.settings import WorkflowSettings

    workflow = WorkflowSettings()
    maps = load_data_maps(workflow.datamaps_dir)
    engines: dict = {}

    def engine_for(conn_id: str):
        if conn_id not in engines:
            engines[conn_id] = ClientStoreHook(store_conn_id=conn_id).get_conn()
        return engines[conn_id]

    def stores_of(controller_id: str) -> Stores:
        return Stores(vault, controller_id, maps, engine_for, workflow.server_log_root)
    return stores_of


class AccessRequestsOperator(BaseVaultOperator):
    """Registers the request given in the trigger form, or selects the open access requests received
    in the run's data interval (a daily run, or a backfill of past days); returns their ids.

    The form's values are read from the run's params, never through templated fields: Airflow keeps
    rendered fields in its database, and the person's identities must not be there. They are masked
    in the task log.
    """

    def execute_on_vault(self, vault: Vault, context: Context) -> list[str]:
        from include.requests.register import register_request, requests_received

        params = context["params"]
        identities = {kind: [params[kind]] for kind in ("email", "phone", "customer_number") if params.get(kind)}
        for values in identities.values():
            mask_secret(values[0])
        if identities:
            if "email" not in identities or not params.get("controller"):
                raise InvalidInput("a request from the form needs its controller and the person's email")
            received = (date.fromisoformat(params["received_on"]) if params.get("received_on")
                        else run_date(context).date())
            request_id = register_request(
                vault, controller_id=params["controller"], kind="access", received_on=received,
                identities=identities, reference=f"airflow:{context['dag_run'].run_id}"[:64], actor=self.actor,
                at=datetime.now(UTC))
            self.log.info("Access request %s registered for controller %s", request_id, params["controller"])
            return [request_id]
        start = context.get("data_interval_start") or run_date(context)
        end = context.get("data_interval_end") or start + timedelta(days=1)
        if end <= start:
            end = start + timedelta(days=1)
        ids = requests_received(vault, start.date(), end.date())
        self.log.info("%d open access request(s) received from %s to %s", len(ids), start.date(), end.date())
        return ids


class PlanRequestsOperator(BaseVaultOperator):
    """Returns the (request, store) pairs a request workflow's store tasks work through: the vault and
    the SQL stores; or, with logs=True, the server logs, with every identity those found. The steps
    are the `plan` and `plan_logs` of the core module named by `steps`.

    :param request_ids: from the workflow's first task.
    :param logs: plan the server-log steps.
    """

    steps = "include.requests.access"
    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_ids")

    def __init__(self, *, request_ids: list[str] | str, logs: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_ids = request_ids
        self.logs = logs

    def execute_on_vault(self, vault: Vault, context: Context) -> list[dict]:
        steps = import_module(self.steps)
        ids = list(self.request_ids or [])
        if self.logs:
            pairs = steps.plan_logs(vault, stores_for(vault), ids, access_settings(), at=datetime.now(UTC))
        else:
            pairs = steps.plan(vault, stores_for(vault), ids, access_settings(), actor=self.actor,
                               at=datetime.now(UTC))
        self.log.info("%d store step(s) planned for %d request(s)", len(pairs), len(ids))
        return pairs


class PlanAccessOperator(PlanRequestsOperator):
    """The searches of access requests: the vault and SQL stores with the identities the vault links
    to the request's, then (logs=True) the server logs."""


class FinishRequestsOperator(BaseVaultOperator):
    """Finishes each request once its stores are done (see `finish`).

    :param request_ids: from the workflow's first task.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_ids")

    def __init__(self, *, request_ids: list[str] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_ids = request_ids

    def execute_on_vault(self, vault: Vault, context: Context) -> list[dict]:
        from include.requests.register import get_request

        stores_of, settings, on = stores_for(vault), access_settings(), run_date(context).date()
        finished = []
        for request_id in self.request_ids or []:
            stores = stores_of(get_request(vault, request_id).controller_id)
            finished.append(self.finish(vault, stores, request_id, settings, on=on, at=datetime.now(UTC)))
        return finished

    def finish(self, vault: Vault, stores: Stores, request_id: str, settings: AccessSettings, *, on: date,
               at: datetime) -> dict:
        raise NotImplementedError


class StoreStepOperator(BaseVaultOperator):
    """One store's step for one request (mapped: stores run in parallel, a failing one retries alone).

    :param request_id: the request.
    :param store: the store's id in the data map, or "vault".
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_id", "store")

    def __init__(self, *, request_id: str, store: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.store = store

    def stores(self, vault: Vault) -> Stores:
        """The stores of the request's controller."""
        from include.requests.register import get_request

        return stores_for(vault)(get_request(vault, self.request_id).controller_id)


class SearchStoreOperator(StoreStepOperator):
    """Searches one store for one request."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.requests.access import search

        records = search(vault, self.stores(vault), self.request_id, self.store, access_settings(),
                         at=datetime.now(UTC))
        self.log.info("Store %s: %d record(s) for request %s", self.store, records, self.request_id)
        return {"request_id": self.request_id, "store": self.store, "records": records}


class PackageAccessOperator(FinishRequestsOperator):
    """Builds, seals and delivers each request's package and completes the request."""

    def finish(self, vault: Vault, stores: Stores, request_id: str, settings: AccessSettings, *, on: date,
               at: datetime) -> dict:
        from include.requests.access import package

        outcome = package(vault, stores, request_id, settings, on=on, actor=self.actor, at=at)
        self.log.info("Request %s: package %s", request_id, outcome["package"])
        return outcome

"""The steps every request takes once registered, whatever its kind (include/requests/pipeline.py):
plan the stores, work on each, plan the server logs, work on them, finish.

XCom carries request ids and case references, store names, counts and paths; never a person's
identities or values. Logs name a request by its case reference (OAK-2026-0007), which staff and the
controller quote, and its id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context, SkipMixin, XComArg, chain
from airflow.sdk.bases.xcom import BaseXCom

from gdpr.hooks.store import ClientStoreHook
from gdpr.operators.base import BaseVaultOperator, run_date
from include.common.clock import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gdpr.operators.gates import ReviewGate
    from include.common.settings import WorkflowSettings
    from include.requests.gather import Stores
    from include.requests.pipeline import RequestSettings
    from include.vault.store import Vault


def lease_holder(context: Context) -> str:
    """The run working on requests, as their leases name it."""
    return f"{context['dag'].dag_id}/{context['dag_run'].run_id}"


def request_settings(workflow: WorkflowSettings) -> RequestSettings:
    from include.requests.pipeline import RequestSettings

    return RequestSettings.of(workflow)


def stores_for(vault: Vault, workflow: WorkflowSettings) -> Callable[[str], Stores]:
    """controller_id -> Stores, with SQL stores reached through their Airflow connections."""
    from include.datamap.model import load_data_maps
    from include.requests.gather import Stores

    maps = load_data_maps(workflow.datamaps_dir)
    engines: dict[str, Engine] = {}

    def engine_for(conn_id: str) -> Engine:
        if conn_id not in engines:
            engines[conn_id] = ClientStoreHook(store_conn_id=conn_id).get_sqlalchemy_engine()
        return engines[conn_id]

    def stores_of(controller_id: str) -> Stores:
        return Stores(vault, controller_id, maps, engine_for, workflow.server_log_root)
    return stores_of


class GatedStepOperator(BaseVaultOperator, SkipMixin):
    """A step review gates come after (the registration: identity and erasure; the finish: the package).
    Once its work is done it skips each of its gates that none of the run's requests comes to: a gate
    with nobody to ask about then costs no task instance, neither its finding step nor its question.

    request_steps gives it its gates.
    """

    gates: Sequence[type[ReviewGate]] = ()

    def run(self, context: Context) -> Any:
        from include.requests.register import get_request

        with self.hook.get_conn() as vault:
            result = self.execute_on_vault(vault, context)
            requests = [get_request(vault, request_id) for request_id in self.requests_of(result)]
            unasked = [gate.finding for gate in self.gates
                       if not any(gate.comes_to(vault, request) for request in requests)]
        if unasked:
            # Skipping ends the task before Airflow pushes what it returns: pushed here.
            context["ti"].xcom_push(BaseXCom.XCOM_RETURN_KEY, result)
            self.skip(context["ti"], [self.dag.get_task(task_id) for task_id in unasked])
        return result

    def requests_of(self, result: Any) -> list[str]:
        """The run's requests, given what this step returned (the registration returns their ids)."""
        return list(result)


class PlanRequestsOperator(BaseVaultOperator):
    """Returns the (request, store) pairs the store tasks work through: the vault and the SQL stores;
    or, with logs=True, the server logs, with every identity those found.

    :param request_ids: from the workflow's first task.
    :param logs: plan the server-log steps.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_ids")

    def __init__(self, *, request_ids: list[str] | XComArg, logs: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_ids: Any = request_ids  # a list once rendered
        self.logs = logs

    def execute_on_vault(self, vault: Vault, context: Context) -> list[dict]:
        from include.requests.pipeline import plan, plan_logs
        from include.requests.register import lease_requests

        given = list(self.request_ids or [])
        ids = lease_requests(vault, given, holder=lease_holder(context), at=utcnow())
        if len(ids) < len(given):
            self.log.warning("%d request(s) left alone: another run holds their lease", len(given) - len(ids))
        step = plan_logs if self.logs else plan
        pairs = step(vault, stores_for(vault, self.workflow), ids, request_settings(self.workflow), actor=self.actor,
                     at=utcnow())
        self.log.info("%d store step(s) planned for %d request(s)", len(pairs), len(ids))
        return pairs


class StoreStepOperator(BaseVaultOperator):
    """One store's step for one request (mapped: stores run in parallel, a failing one retries alone;
    a change to a store applies the plan made before anything changed).

    :param request_id: the request.
    :param store: the store's id in the data map, or "vault".
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_id", "store")

    def __init__(self, *, request_id: str, store: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.store = store

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.requests.pipeline import on_store
        from include.requests.register import get_request, require_lease

        require_lease(vault, self.request_id, holder=lease_holder(context), at=utcnow())
        request = get_request(vault, self.request_id)
        stores = stores_for(vault, self.workflow)(request.controller_id)
        done = on_store(vault, stores, self.request_id, self.store, request_settings(self.workflow), actor=self.actor,
                        at=utcnow())
        self.log.info("Store %s, case %s (request %s): %s", self.store, request.case_reference, self.request_id,
                      ", ".join(f"{name} {count}" for name, count in done.items()
                                if name not in ("request_id", "store")))
        return {**done, "case_reference": request.case_reference}


class FinishRequestsOperator(GatedStepOperator):
    """Finishes each request once its stores have answered: its package or confirmation, delivered to
    the controller's outbox.

    :param request_ids: from the workflow's first task.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "request_ids")

    def __init__(self, *, request_ids: list[str] | XComArg, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request_ids: Any = request_ids  # a list once rendered

    def execute_on_vault(self, vault: Vault, context: Context) -> list[dict]:
        from include.requests.pipeline import finish
        from include.requests.register import get_request, lease_requests, release_lease

        stores_of, settings = stores_for(vault, self.workflow), request_settings(self.workflow)
        on = run_date(context).date()
        finished = []
        holder = lease_holder(context)
        for request_id in lease_requests(vault, list(self.request_ids or []), holder=holder, at=utcnow()):
            stores = stores_of(get_request(vault, request_id).controller_id)
            finished.append(done := finish(vault, stores, request_id, settings, on=on, actor=self.actor,
                                           at=utcnow()))
            self.log.info("Case %s (request %s): %s%s", done["case_reference"], request_id,
                          done.get("package") or done.get("confirmation"),
                          ", held for review" if done.get("held_for_review") else "")
            if not done.get("held_for_review"):  # a held package stays the run's: its review gate asks about it
                release_lease(vault, request_id, holder=holder)
        return finished

    def requests_of(self, result: Any) -> list[str]:
        return list(self.request_ids or [])


def request_steps(register: GatedStepOperator, *, planned: str, step: str, finish_task_id: str,
                  gates: Sequence[type[ReviewGate]]) -> None:
    """The tasks after `register` (whose result is the request ids), named in the workflow's words:
    `plan_store_{planned}`, `{step}_store`, `plan_log_{planned}`, `{step}_server_logs`, `finish_task_id`;
    and the workflow's review gates (gdpr.operators.gates), in the order given: those a request passes
    before any store is touched (identity, erasure) before the plan, the package review after the finish."""
    # none_failed: a gate with nobody to ask about skips; a request refused at a gate is left alone by the plan.
    plan = PlanRequestsOperator(task_id=f"plan_store_{planned}", request_ids=register.output,
                                trigger_rule="none_failed")
    on_stores = StoreStepOperator.partial(task_id=f"{step}_store", map_index_template="{{ task.store }}",
                                          ).expand_kwargs(plan.output)
    plan_logs = PlanRequestsOperator(task_id=f"plan_log_{planned}", request_ids=register.output, logs=True)
    on_logs = StoreStepOperator.partial(task_id=f"{step}_server_logs", map_index_template="{{ task.store }}",
                                        ).expand_kwargs(plan_logs.output)
    # none_failed: a request with nothing to do in the stores or logs skips them; a failed store stops here.
    finish = FinishRequestsOperator(task_id=finish_task_id, request_ids=register.output, trigger_rule="none_failed")
    register.gates = [gate for gate in gates if gate.before_work]
    finish.gates = [gate for gate in gates if not gate.before_work]
    before = [task for gate in register.gates for task in gate.steps(register.output)]
    after = [task for gate in finish.gates for task in gate.steps(register.output)]
    chain(register, *before, plan, on_stores, plan_logs, on_logs, finish, *after)

"""Operators of rights requests (rectify, erase, restrict, lift a restriction, object): register,
plan, act on one store, confirm.

XCom carries request ids, store names, counts and paths; never a person's identities or values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from airflow.sdk import Context
from airflow.sdk.log import mask_secret

from gdpr.operators.base import BaseVaultOperator
from gdpr.operators.dsar import FinishRequestsOperator, PlanRequestsOperator, StoreStepOperator, access_settings
from gdpr.operators.retention import run_date

if TYPE_CHECKING:
    from include.requests.access import AccessSettings
    from include.requests.gather import Stores
    from include.vault.store import Vault


class RightsRequestOperator(BaseVaultOperator):
    """Registers the request given in the trigger form and returns its id (in a list, as the other
    steps take several). The form's values are read from the run's params, never through templated
    fields, and the person's values are masked in the task log.
    """

    def execute_on_vault(self, vault: Vault, context: Context) -> list[str]:
        from include.requests.rights import register_rights_request

        params = context["params"]
        for name in ("email", "phone", "corrected_value"):
            if params.get(name):
                mask_secret(params[name])
        identities = {kind: [params[kind]] for kind in ("email", "phone") if params.get(kind)}
        right = params["right"]
        particulars = {"rectify": {"field": params.get("rectify_field")},
                       "object": {"ground": params.get("objection_ground")},
                       "lift_restriction": {"person_told_on": params.get("person_told_on")}}.get(right, {})
        field, value = params.get("rectify_field"), params.get("corrected_value")
        corrections = {field: value} if right == "rectify" and field and value else None
        received = (date.fromisoformat(params["received_on"]) if params.get("received_on")
                    else run_date(context).date())
        request_id = register_rights_request(
            vault, controller_id=params["controller"], kind=right, received_on=received, identities=identities,
            particulars={k: v for k, v in particulars.items() if v}, corrections=corrections,
            reference=f"airflow:{context['dag_run'].run_id}"[:64], actor=self.actor, at=datetime.now(UTC))
        self.log.info("Request %s (%s) registered for controller %s", request_id, right, params["controller"])
        return [request_id]


class PlanRightsOperator(PlanRequestsOperator):
    """The store actions of rights requests: the vault and SQL stores; or, with logs=True, the server
    logs with every IP address found. Restricting, lifting and objecting are done here."""

    steps = "include.requests.rights"


class ActOnStoreOperator(StoreStepOperator):
    """Erases or rectifies in one store for one request; a retry applies the plan made before
    anything changed."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.requests.rights import act

        outcome = act(vault, self.stores(vault), self.request_id, self.store, access_settings(), actor=self.actor,
                      at=datetime.now(UTC))
        records = sum(done["records"] for done in outcome["done"])
        kept = len(outcome.get("kept", []))
        self.log.info("Store %s, request %s: %d record(s) changed, %d kept", self.store, self.request_id, records, kept)
        return {"request_id": self.request_id, "store": self.store, "changed": records, "kept": kept}


class ConfirmRightsOperator(FinishRequestsOperator):
    """Writes each request's confirmation to the controller's outbox and completes the request."""

    def finish(self, vault: Vault, stores: Stores, request_id: str, settings: AccessSettings, *, on: date,
               at: datetime) -> dict:
        from include.requests.rights import confirm

        outcome = confirm(vault, stores, request_id, settings, on=on, actor=self.actor, at=at)
        self.log.info("Request %s: %s, confirmation %s", request_id, outcome["status"], outcome["confirmation"])
        return outcome

"""The operator that registers an access request from the trigger form, or selects the open ones of
the run's days; the steps after it are include/requests/pipeline.py's (gdpr.operators.requests).

XCom carries request ids; never a person's identities or data.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import Context
from airflow.sdk.log import mask_secret

from gdpr.defaults import form_fields
from gdpr.operators.base import run_date
from gdpr.operators.requests import GatedStepOperator, lease_holder
from include.common.clock import utcnow
from include.common.errors import InvalidInput

if TYPE_CHECKING:
    from include.vault.store import Vault


class AccessRequestsOperator(GatedStepOperator):
    """Registers the request given in the trigger form, or, with an empty form, selects every open
    access request received before the end of the run's data interval that still needs work (a daily
    run, or a backfill of past days); returns the ids of those this run holds the lease of (another
    run's are left to it). A form that gives only part of a request (a controller but no email, an
    email but no controller) is refused, naming the missing field, rather than taken for a daily run.

    The form's values are read from the run's params, never through templated fields: Airflow keeps
    rendered fields in its database, and the person's identities must not be there. They are masked
    in the task log.
    """

    def execute_on_vault(self, vault: Vault, context: Context) -> list[str]:
        params = context["params"]
        identities = {kind: [params[kind]] for kind in ("email", "phone", "customer_number") if params.get(kind)}
        for values in identities.values():
            mask_secret(values[0])
        if identities or params.get("controller"):
            return self.register(vault, context, identities)
        return self.select_open_requests(vault, context)

    def register(self, vault: Vault, context: Context, identities: dict[str, list[str]]) -> list[str]:
        """The request the form gives, once the form names both whose request it is and to whom."""
        from include.requests.register import get_request, lease_requests, register_request

        params = context["params"]
        missing = [name for name in ("controller", "email") if not params.get(name)]
        if missing:
            raise InvalidInput(f"the form has no {form_fields(context['dag'], missing)}: a request needs "
                               f"{form_fields(context['dag'], ('controller', 'email'))} together (leave the "
                               "form empty to work every open request)")
        received = (date.fromisoformat(params["received_on"]) if params.get("received_on")
                    else run_date(context).date())
        request_id = register_request(
            vault, controller_id=params["controller"], kind="access", received_on=received,
            identities=identities, reference=f"airflow:{context['dag_run'].run_id}"[:64], actor=self.actor,
            at=utcnow())
        self.log.info("Access request, case %s (request %s), registered for controller %s",
                      get_request(vault, request_id).case_reference, request_id, params["controller"])
        return lease_requests(vault, [request_id], holder=lease_holder(context), at=utcnow())

    def select_open_requests(self, vault: Vault, context: Context) -> list[str]:
        """The open access requests received before the end of the run's data interval."""
        from include.requests.register import lease_requests, requests_to_work

        start = context.get("data_interval_start") or run_date(context)
        end = context.get("data_interval_end") or start + timedelta(days=1)
        if end <= start:
            end = start + timedelta(days=1)
        waiting = requests_to_work(vault, received_before=end.date())
        ids = lease_requests(vault, waiting, holder=lease_holder(context), at=utcnow())
        self.log.info("%d open access request(s) received before %s to work on; %d left to other runs",
                      len(ids), end.date(), len(waiting) - len(ids))
        return ids

"""The operator that registers a rights request (rectify, erase, restrict, lift a restriction,
object) from the trigger form; the steps after it are include/requests/pipeline.py's
(gdpr.operators.requests).

XCom carries request ids; never a person's identities or values.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from airflow.sdk import Context
from airflow.sdk.log import mask_secret

from gdpr.defaults import form_fields
from gdpr.operators.base import run_date
from gdpr.operators.requests import GatedStepOperator, lease_holder
from include.common.clock import utcnow
from include.common.errors import InvalidInput
from include.requests.kinds import RIGHT_LABELS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from include.vault.store import Vault

# The form's fields each right needs besides the controller, the email and the right itself: those of
# the form's section for the right (the core checks the request again, in its own words).
NEEDED = {"rectify": ("rectify_field", "corrected_value"), "object": ("objection_ground",),
          "lift_restriction": ("person_told_on",)}


def missing_from_form(right: str, params: Mapping) -> list[str]:
    """The fields the right needs that the form left empty (a phone number's rectification needs
    the current number too, to find it by)."""
    needed = [*NEEDED.get(right, ()), *(["phone"] if right == "rectify" and params.get("rectify_field") == "phone"
                                        else [])]
    return [name for name in needed if not params.get(name)]


class RightsRequestOperator(GatedStepOperator):
    """Registers the request given in the trigger form and returns its id (in a list, as the other
    steps take several). A form without what its right needs is refused, naming the fields to fill
    in. The form's values are read from the run's params, never through templated fields, and the
    person's values are masked in the task log.
    """

    def execute_on_vault(self, vault: Vault, context: Context) -> list[str]:
        from include.requests.register import get_request, lease_requests
        from include.requests.rights import register_rights_request

        params = context["params"]
        for name in ("email", "phone", "corrected_value"):
            if params.get(name):
                mask_secret(params[name])
        identities = {kind: [params[kind]] for kind in ("email", "phone") if params.get(kind)}
        right = params["right"]
        if missing := missing_from_form(right, params):
            raise InvalidInput(f"the right '{RIGHT_LABELS[right]}' needs {form_fields(context['dag'], missing)}, "
                               f"which the form left empty: trigger again with {'them' if missing[1:] else 'it'} "
                               "filled in")
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
            reference=f"airflow:{context['dag_run'].run_id}"[:64], actor=self.actor, at=utcnow())
        self.log.info("Request to %s, case %s (request %s), registered for controller %s", right,
                      get_request(vault, request_id).case_reference, request_id, params["controller"])
        return lease_requests(vault, [request_id], holder=lease_holder(context), at=utcnow())

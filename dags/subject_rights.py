"""
### Rights requests: rectify, erase, restrict, lift a restriction, object (Art. 16-18, 21)

**From the form**: choose the controller, give the person's email, the right, and what that right
needs:

- **rectify**: the field to correct (email or phone; for a phone, give the current one too) and
  the corrected value. Written to every store that holds the old value; refused while the
  person's data is restricted.
- **erase**: every store, as its data map says (delete, mask, or keep under a named legal reason,
  restricted, until the date the controller's instruction sets). Vault data is crypto-shredded,
  server-log lines from the person's IP addresses are anonymised or dropped.
- **restrict** / **lift restriction**: restricted data is stored and nothing else; lifting needs
  the day the person was told.
- **object**: to direct marketing, the person goes on the controller's suppression list for good;
  on other grounds, the objection waits for the controller's decision, the data restricted meanwhile.

The request goes into the same register as access requests, with the same deadlines. Each store is
acted on by its own task, in parallel, then the server logs; a failed store retries alone and applies
the plan made before anything changed. The confirmation (what was done in each store, what was kept,
why and until when) is delivered to the controller's outbox. Neither XCom nor the logs carry the
person's values.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from gdpr.defaults import DAG_DEFAULTS, EMAIL_PATTERN, configured_controllers
from gdpr.operators.rights import (
    ActOnStoreOperator,
    ConfirmRightsOperator,
    PlanRightsOperator,
    RightsRequestOperator,
)

with DAG(
    dag_id="subject_rights",
    schedule=None,
    **DAG_DEFAULTS,
    tags=["gdpr", "rights"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "controller": Param(type="string", enum=configured_controllers(), title="Controller",
                            description="The client the request was made to."),
        "email": Param(type="string", format="email", pattern=EMAIL_PATTERN, maxLength=320,
                       title="The person's email address"),
        "right": Param("erase", type="string", enum=["rectify", "erase", "restrict", "lift_restriction", "object"],
                       title="Right", values_display={
                           "rectify": "Rectification", "erase": "Erasure", "restrict": "Restriction",
                           "lift_restriction": "Lift a restriction", "object": "Objection"}),
        "rectify_field": Param(None, type=["null", "string"], enum=[None, "email", "phone"],
                               title="Rectify: the field to correct"),
        "corrected_value": Param(None, type=["null", "string"], maxLength=320, title="Rectify: the corrected value"),
        "phone": Param(None, type=["null", "string"], maxLength=32, title="The person's current phone number",
                       description="Needed to rectify a phone number."),
        "objection_ground": Param("direct_marketing", type="string", enum=["direct_marketing", "other"],
                                  title="Object: the ground"),
        "person_told_on": Param(None, type=["null", "string"], format="date",
                                title="Lift a restriction: the day the person was told"),
        "received_on": Param(None, type=["null", "string"], format="date", title="Received on",
                             description="The day the request arrived; empty for today."),
    },
) as dag:
    request = RightsRequestOperator(task_id="register_request")  # reads the form's params
    plan = PlanRightsOperator(task_id="plan_store_actions", request_ids=request.output)
    act = ActOnStoreOperator.partial(
        task_id="act_on_store",
        map_index_template="{{ task.store }}",
    ).expand_kwargs(plan.output)
    plan_logs = PlanRightsOperator(task_id="plan_log_actions", request_ids=request.output, logs=True)
    act_on_logs = ActOnStoreOperator.partial(
        task_id="act_on_server_logs",
        map_index_template="{{ task.store }}",
    ).expand_kwargs(plan_logs.output)
    # none_failed: rights acted on in the vault alone skip the store tasks; a failed store stops here.
    confirm = ConfirmRightsOperator(task_id="confirm_request", request_ids=request.output, trigger_rule="none_failed")

    request >> plan >> act >> plan_logs >> act_on_logs >> confirm

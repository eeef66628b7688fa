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

from gdpr.defaults import REQUEST_RUNS_AT_ONCE, controller_param, dag_defaults, email_param, received_on_param
from gdpr.operators.requests import request_steps
from gdpr.operators.rights import RightsRequestOperator
from include.requests.kinds import RIGHT_LABELS, RIGHTS

DESCRIPTION = "Carries out a person's request to correct, erase, restrict or object, with a confirmation."

with DAG("subject_rights", schedule=None,
         **dag_defaults(__doc__, DESCRIPTION, "rights", runs_at_once=REQUEST_RUNS_AT_ONCE), params={
    "controller": controller_param("The client the request was made to.", required=True),
    "email": email_param(required=True),
    "right": Param("erase", type="string", enum=list(RIGHTS), title="Right", values_display=RIGHT_LABELS),
    "rectify_field": Param(None, type=["null", "string"], enum=[None, "email", "phone"],
                           title="Rectify: the field to correct"),
    "corrected_value": Param(None, type=["null", "string"], maxLength=320, title="Rectify: the corrected value"),
    "phone": Param(None, type=["null", "string"], maxLength=32, title="The person's current phone number",
                   description="Needed to rectify a phone number."),
    "objection_ground": Param("direct_marketing", type="string", enum=["direct_marketing", "other"],
                              title="Object: the ground"),
    "person_told_on": Param(None, type=["null", "string"], format="date",
                            title="Lift a restriction: the day the person was told"),
    "received_on": received_on_param(),
}) as dag:
    request_steps(RightsRequestOperator(task_id="register_request"),  # reads the form's params
                  planned="actions", step="act_on", finish_task_id="confirm_request")

"""
### Correct, erase, restrict or object: a person's rights request (Art. 16-18, 21)

**What the form does.** It records a person's request to one of our clients (the controller) and
carries it out in every system that holds the person's data. Fill in:

1. **Controller**: the client the person asked.
2. **The person's email address**, as they gave it, and their **phone number** if they gave one
   (it finds more of their data).
3. **Right**: what the person asked for. Nothing is chosen for you: an erasure cannot be undone.
4. The section below for that right, if it has one: **Only for a rectification** (which detail to
   correct and its corrected value; to correct a phone number, give the current one above),
   **Only for an objection** (its ground), **Only for lifting a restriction** (the day the person
   was told). Erasure and restriction need nothing more. The other sections are ignored.
5. **Received on**: the day the request arrived, if it was not today.

**What happens next.** The request goes into the register of requests with its due date (one
calendar month, by UK rules and the client's bank holidays) and is carried out at once:

- **Rectification**: the corrected value replaces the old one wherever it is held. Refused while
  the person's data is restricted.
- **Erasure**: each system as the client's data map says (deleted, masked, or kept under a named
  legal reason, such as the 7-year accounting rule, until the day the client's instruction sets);
  the person's data in our vault and its backups is made unreadable, and their visits in the web
  server logs are anonymised or dropped.
- **Restriction**: the data is kept and nothing else is done with it. **Lifting a restriction**
  ends that.
- **Objection**: to direct marketing, the person is never contacted again (they go on the client's
  suppression list, which outlives an erasure); on other grounds, their data is restricted until
  the client decides.

If something the right needs is missing, the first step (`register_request`) turns red at once
and its log says which field to fill in: trigger again with it. Nothing was done.

**Where the result is.** When the run is green, the confirmation for the client is in the
client's outbox folder (`var/outbox/<controller>/`), with a version addressed to the person beside
it for the client to send. Both quote the request's case reference (such as FENLAND-2026-0007),
which the log of the last step, `confirm_request`, gives too, and say what was done in each system,
what was kept, why and until when. What the form held is removed from Airflow a day after the run
(`airflow_metadata_hygiene`).

---

**For engineers.** One request through the common pipeline (`include/requests/pipeline.py`,
`Rights` in `include/requests/rights.py`): `register_request` checks the form and registers the
request; then each store (the vault, each client store of the data map) is planned and acted on
by its own mapped task, in parallel, then the server logs with every IP address found. A failed
store retries alone and applies the plan kept before anything changed. Vault data is
crypto-shredded. Neither XCom nor the task logs carry the person's values. See
`docs/rights-requests.md`.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from gdpr.defaults import (
    REQUEST_RUNS_AT_ONCE,
    choice_param,
    controller_param,
    dag_defaults,
    email_param,
    received_on_param,
)
from gdpr.operators.gates import ErasureGate, IdentityGate
from gdpr.operators.requests import request_steps
from gdpr.operators.rights import RightsRequestOperator
from include.requests.kinds import RIGHT_LABELS

DESCRIPTION = "Carries out a person's request to correct, erase, restrict or object, with a confirmation."
RECTIFY, OBJECT, LIFT = "Only for a rectification", "Only for an objection", "Only for lifting a restriction"

with DAG("subject_rights", schedule=None,
         **dag_defaults(__doc__, DESCRIPTION, "rights", runs_at_once=REQUEST_RUNS_AT_ONCE), params={
    "controller": controller_param("The client the person asked.", required=True),
    "email": email_param(required=True),
    "phone": Param(None, type=["null", "string"], maxLength=32, title="The person's phone number",
                   description="If the person gave one: it finds more of their data. Needed to correct a phone "
                               "number: the number as it is now."),
    "right": choice_param(RIGHT_LABELS, title="Right",
                          description="What the person asked for. An erasure cannot be undone. Fill in the "
                                      "section for this right below, if it has one."),
    "received_on": received_on_param(),
    "rectify_field": choice_param({"email": "Email address", "phone": "Phone number"}, title="Detail to correct",
                                  description="Which of the person's details is wrong.", when_empty="(none)",
                                  section=RECTIFY),
    "corrected_value": Param(None, type=["null", "string"], maxLength=320, title="Corrected value",
                             description="The detail as it should be, exactly as the person gave it.",
                             section=RECTIFY),
    "objection_ground": choice_param(
        {"direct_marketing": "Direct marketing: never contacted again",
         "other": "Other grounds: data restricted until the client decides"},
        title="Ground", description="What the person objects to.", when_empty="(none)", section=OBJECT),
    "person_told_on": Param(None, type=["null", "string"], format="date", title="Day the person was told",
                            description="The day the person was told the restriction would be lifted (Art. 18(3)).",
                            section=LIFT),
}) as dag:
    request_steps(RightsRequestOperator(task_id="register_request"),  # reads the form's params
                  planned="actions", step="act_on", finish_task_id="confirm_request",
                  gates=(IdentityGate, ErasureGate))  # as each controller's instruction file asks

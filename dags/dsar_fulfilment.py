"""
### Access requests (Art. 15): a copy of a person's data, found, packaged and sealed on time

**What the form does.** It records a person's request to one of our clients (the controller) for a
copy of their data, and answers it at once. Fill in:

1. **Controller**: the client the person asked.
2. **The person's email address**, as they gave it.
3. Their **phone number** and **customer number**, if they gave them: they find more of their data.
4. **Received on**: the day the request arrived, if it was not today.

The controller and the email address go together: a form with only one of them is refused (the
first step, `register_or_select_requests`, turns red and its log says which field is missing).
Nothing is registered; trigger again with both.

**What happens next.** The request goes into the register of requests with its due date (one
calendar month, by UK rules and the client's bank holidays). Every system that may hold the
person's data is searched; the copy is made only when every one has answered, so a system that
is down holds it back rather than leaving something out. Other people's details are withheld.

**Where the result is.** When the run is green, the sealed package is in the client's outbox folder
(`var/outbox/<controller>/`): the person's data, and a report for them (HTML and PDF) quoting the
request's case reference (such as FENLAND-2026-0007), which the log of the last step,
`package_and_deliver`, gives too. `gdpr-admin package secret FILE` gives the secret that opens it,
to be sent to the client separately. A person nobody holds data about gets a "no personal data
held" report. Where the client's instructions ask to review answers first, the package is kept
out of the outbox until someone releases it. What the form held is removed from Airflow a day
after the run (`airflow_metadata_hygiene`).

**Every day, with nothing to fill in.** The daily run (or a trigger with the controller and the
email left empty) works every open access request that still needs it, whatever day it arrived (one
that is paused, or waits for the person's identity or for a review, waits), so nothing is left
behind: a backlog imported with `gdpr-admin request import FILE.csv` is worked through by the next
run.

---

**For engineers.** One request through the common pipeline (`include/requests/pipeline.py`,
`Access` in `include/requests/access.py`). Each store (the vault, each client store of the data
map) is searched by its own mapped task, in parallel, then the server logs with the IP addresses
found; a store that fails is retried alone, and the package is made only when every store has
answered. Runs work side by side: each request is leased to one run at a time. A daily run takes
the open requests received before the end of its data interval (a backfill, those of past days).
Neither XCom nor the task logs carry the person's identities. See `docs/access-requests.md`.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from gdpr.defaults import (
    REQUEST_RUNS_AT_ONCE,
    controller_param,
    dag_defaults,
    email_param,
    intervals,
    received_on_param,
)
from gdpr.operators.dsar import AccessRequestsOperator
from gdpr.operators.gates import IdentityGate, PackageGate
from gdpr.operators.requests import request_steps

DESCRIPTION = "Answers access requests: finds a person's data, then packages and seals it for the controller."

with DAG("dsar_fulfilment", schedule=intervals("0 0 * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "rights", runs_at_once=REQUEST_RUNS_AT_ONCE), params={
    "controller": controller_param("The client the person asked. Give it with the person's email address; leave "
                                   "both empty to work every open request.",
                                   when_empty="(none: work every open request)"),
    "email": email_param(),
    "phone": Param(None, type=["null", "string"], maxLength=32, title="Phone number (optional)",
                   description="If the person gave one: it finds more of their data."),
    "customer_number": Param(None, type=["null", "string"], maxLength=64, title="Customer number (optional)",
                             description="If the person gave one: it finds more of their data."),
    "received_on": received_on_param(),
}) as dag:
    request_steps(AccessRequestsOperator(task_id="register_or_select_requests"),  # reads the form's params
                  planned="searches", step="search", finish_task_id="package_and_deliver",
                  gates=(IdentityGate, PackageGate))  # as each controller's instruction file asks

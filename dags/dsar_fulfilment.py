"""
### Access requests (Art. 15): gather, redact, package, deliver on time

**From the form**: choose the controller, give the person's email (and a phone number or customer
number if known) and the day the request arrived. The request is registered with its due date (one
month, by the UK rules and the controller's region's bank holidays) and fulfilled at once.

**Daily**: every open access request received before the end of the run's day that still needs
work is fulfilled, whatever day it arrived (a paused one waits), so nothing is left behind and a
backlog imported with `gdpr-admin request import FILE.csv` is worked through by the next run. Runs
work side by side; each request is leased to one run at a time.

Each store (the vault, each client store of the data map) is searched by its own task, in
parallel, then the server logs with the IP addresses found; a store that fails is retried alone,
and the package is made only when every store has answered. A person nobody holds data about gets
a "no personal data held" response. The package, sealed, is delivered to the controller's outbox;
`gdpr-admin package secret` gives the secret that opens it. Neither XCom nor the logs carry the person's identities.
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
from gdpr.operators.requests import request_steps

DESCRIPTION = "Answers access requests: finds a person's data, then packages and seals it for the controller."

with DAG("dsar_fulfilment", schedule=intervals("0 0 * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "rights", runs_at_once=REQUEST_RUNS_AT_ONCE), params={
    "controller": controller_param("The client the request was made to."),
    "email": email_param(),
    "phone": Param(None, type=["null", "string"], maxLength=32, title="Phone number (optional)"),
    "customer_number": Param(None, type=["null", "string"], maxLength=64, title="Customer number (optional)"),
    "received_on": received_on_param(),
}) as dag:
    request_steps(AccessRequestsOperator(task_id="register_or_select_requests"),  # reads the form's params
                  planned="searches", step="search", finish_task_id="package_and_deliver")

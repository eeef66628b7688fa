"""
### Access requests (Art. 15): gather, redact, package, deliver on time

**From the form**: choose the controller, give the person's email (and a phone number or customer
number if known) and the day the request arrived. The request is registered with its due date (one
month, by the UK rules and the controller's region's bank holidays) and fulfilled at once.

**Daily**: every open access request received in the run's day is fulfilled, so a backlog imported
with `gdpr-admin request import FILE.csv` is worked through with
`airflow backfill create --dag-id dsar_fulfilment --from-date D --to-date D`.

Each store (the vault, each client store of the data map) is searched by its own task, in
parallel, then the server logs with the IP addresses found; a store that fails is retried alone,
and the package is made only when every store has answered. A person nobody holds data about gets
a "no personal data held" response. The package, sealed, is delivered to the controller's outbox;
`gdpr-admin package secret` gives the secret that opens it. Neither XCom nor the logs carry the person's identities.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from gdpr.defaults import DAG_DEFAULTS, EMAIL_PATTERN, configured_controllers
from gdpr.operators.dsar import AccessRequestsOperator, PackageAccessOperator, PlanAccessOperator, SearchStoreOperator

with DAG(
    dag_id="dsar_fulfilment",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    **DAG_DEFAULTS,
    tags=["gdpr", "rights"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "controller": Param(None, type=["null", "string"], enum=[None, *configured_controllers()],
                            title="Controller", description="The client the request was made to."),
        "email": Param(None, type=["null", "string"], format="email", pattern=EMAIL_PATTERN, maxLength=320,
                       title="The person's email address"),
        "phone": Param(None, type=["null", "string"], maxLength=32, title="Phone number (optional)"),
        "customer_number": Param(None, type=["null", "string"], maxLength=64, title="Customer number (optional)"),
        "received_on": Param(None, type=["null", "string"], format="date", title="Received on",
                             description="The day the request arrived; empty for the run's date."),
    },
) as dag:
    requests = AccessRequestsOperator(task_id="register_or_select_requests")  # reads the form's params
    plan = PlanAccessOperator(task_id="plan_store_searches", request_ids=requests.output)
    search = SearchStoreOperator.partial(
        task_id="search_store",
        map_index_template="{{ task.store }}",
    ).expand_kwargs(plan.output)
    plan_logs = PlanAccessOperator(task_id="plan_log_searches", request_ids=requests.output, logs=True)
    search_logs = SearchStoreOperator.partial(
        task_id="search_server_logs",
        map_index_template="{{ task.store }}",
    ).expand_kwargs(plan_logs.output)
    # none_failed: a controller with no server logs skips their search; a failed store stops here.
    package = PackageAccessOperator(task_id="package_and_deliver", request_ids=requests.output,
                                    trigger_rule="none_failed")

    requests >> plan >> search >> plan_logs >> search_logs >> package

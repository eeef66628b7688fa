"""
### Server-log retention

The privacy notice: server logs' IP addresses go when the client's limit is reached. Each day, for
each controller's log locations (nginx/Apache combined format, rotated and gzipped files included),
lines older than the controller's instruction allows are anonymised (IPv4 to /24, IPv6 to /48) or
dropped, as the instruction says. Each file is replaced atomically: a crash leaves the old file or
the new one, never half of one, and the next run finishes the work.
"""

from __future__ import annotations

from airflow.sdk import DAG

from gdpr.defaults import at_times, dag_defaults
from gdpr.operators.audit import VerifyAuditLogOperator
from gdpr.operators.retention import InstructionsOperator, ServerLogRetentionOperator

DESCRIPTION = "Anonymises or deletes web server log lines past each controller's retention, daily."

with DAG("server_log_retention", schedule=at_times("15 3 * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "retention", "server-logs")) as dag:
    controllers = InstructionsOperator(task_id="record_instructions")
    logs = ServerLogRetentionOperator.partial(
        task_id="apply_log_retention",
        map_index_template="{{ task.controller_id }}",
    ).expand(controller_id=controllers.output)
    verify = VerifyAuditLogOperator(task_id="verify_audit_log")

    controllers >> logs >> verify

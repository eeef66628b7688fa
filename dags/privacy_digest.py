"""
### Privacy digest: what is due, every morning

Each morning, every controller's privacy contact (the email address in the `contact` of its
instruction file) is mailed its requests due within 7 days (those due within 3 days marked
**urgent**), overdue, awaiting review, awaiting identity and paused, and the complaints to
acknowledge with the date each must be acknowledged by (within 30 days of receipt). The agency's
privacy mailbox (`GDPR_PRIVACY_MAILBOX`) gets every controller's. A controller with a request
urgent or overdue gets a warning in the task log, with the counts and case references. A controller
whose contact has no email address is not mailed, and the log says so.

Then each controller whose requests were completed in the run's interval (the day before) is told
which responses are ready and where each is in its outbox; each notice is audited and sent once.

The mails hold case references, counts, dates, outbox paths and a link to the Privacy requests
page; never a person's details. They go through Airflow's SMTP provider, by the connection
`smtp_default` (host, port, login, and the sender as `from_email` in its extra).
"""

from __future__ import annotations

from airflow.sdk import DAG

from gdpr.defaults import dag_defaults, intervals
from gdpr.operators.digest import PrivacyDigestOperator, ReadyNoticeOperator

DESCRIPTION = "Mails controllers and the agency the privacy requests due, and the responses ready, each morning."

with DAG("privacy_digest", schedule=intervals("0 6 * * *"),
         **dag_defaults(__doc__, DESCRIPTION, "rights", "digest")) as dag:
    PrivacyDigestOperator(task_id="mail_daily_digest")
    ReadyNoticeOperator(task_id="mail_ready_notices")

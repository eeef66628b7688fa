"""Operators of the daily privacy digest and of the notices that responses are ready, mailed through
Airflow's SMTP provider (the connection `smtp_default`: host, port, login, TLS, and the sender as
`from_email` in its extra; else the agency's privacy mailbox sends).

The mails name cases by reference, with counts, dates and outbox paths; the task logs and XCom
carry controller ids, case references and counts, never an address.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from gdpr.operators.base import BaseVaultOperator, run_date
from include.common.clock import utcnow
from include.common.errors import InvalidInput

if TYPE_CHECKING:
    from include.requests.digest import Mail
    from include.vault.store import Vault

SMTP_CONN_ID = "smtp_default"  # the SMTP provider's default connection
PRIVACY_PAGE = "/privacy-requests/"  # the Privacy requests page, under Airflow's base URL


def privacy_page_url() -> str:
    """The Privacy requests page's address, under Airflow's base URL (`[api] base_url`)."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback=None) or "http://localhost:8080/"  # Airflow's own fallback
    return base.rstrip("/") + PRIVACY_PAGE


def run_days(context: Context) -> tuple[date, date]:
    """The run's days: its data interval's first day, and its last, the day of the digest (a run
    without an interval covers the day before it)."""
    end = context.get("data_interval_end") or run_date(context)
    start = context.get("data_interval_start") or end - timedelta(days=1)
    if start.date() >= end.date():
        start = end - timedelta(days=1)
    return start.date(), end.date()


class PrivacyMailOperator(BaseVaultOperator):
    """Mails through Airflow's SMTP provider.

    :param smtp_conn_id: the Airflow connection of the mail server.
    """

    template_fields: Sequence[str] = (*BaseVaultOperator.template_fields, "smtp_conn_id")

    def __init__(self, *, smtp_conn_id: str = SMTP_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smtp_conn_id = smtp_conn_id

    def addressed(self, contacts: Mapping[str, str | None], controller_ids: Collection[str], what: str) -> None:
        """A warning for each controller to be mailed whose contact has no email address."""
        for controller_id in sorted(controller_ids):
            if not contacts.get(controller_id):
                self.log.warning("Controller %s: its contact (the instruction file's `contact`) has no email "
                                 "address, so its %s is not mailed", controller_id, what)

    def send(self, mails: Sequence[Mail], sent: Callable[[Mail], None] = lambda mail: None) -> None:
        """Send the mails over one connection to the server; `sent` is called after each. Without the
        connection (one machine with no mail server, as `make run` starts), each mail is written to
        the reports folder instead, as a file a mail client opens, and the log says where."""
        import smtplib
        from typing import cast

        from airflow.providers.smtp.hooks.smtp import SmtpHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        if not mails:
            return
        try:
            SmtpHook.get_connection(self.smtp_conn_id)
        except AirflowNotFoundException:
            self.drop(mails, sent)
            return
        with SmtpHook(smtp_conn_id=self.smtp_conn_id) as hook:  # logs in as the connection says
            sender = hook.from_email or self.workflow.privacy_mailbox
            if not sender:
                raise InvalidInput(f"connection '{self.smtp_conn_id}': extra 'from_email' is missing and "
                                   "GDPR_PRIVACY_MAILBOX is not set: the mails have no sender")
            # The provider's send_email_smtp sends HTML alone: these carry a plain-text part too.
            client = cast(smtplib.SMTP, hook._smtp_client)
            for mail in mails:
                client.send_message(mail.message(sender))
                sent(mail)
                self.log.info("Mailed %s: %s", mail.audience, mail.subject)

    def drop(self, mails: Sequence[Mail], sent: Callable[[Mail], None]) -> None:
        from include.common.files import write_atomically

        folder = self.workflow.reports_dir / "mail"
        sender = self.workflow.privacy_mailbox or "privacy@localhost"
        for mail in mails:
            path = folder / f"{utcnow():%Y%m%dT%H%M%S%f}-{mail.audience.replace(' ', '-')}.eml"
            write_atomically(path, bytes(mail.message(sender)), mode=0o640)
            sent(mail)
        self.log.warning("No mail server (Airflow connection '%s'): %d mail(s) written to %s instead",
                         self.smtp_conn_id, len(mails), folder)


class PrivacyDigestOperator(PrivacyMailOperator):
    """Mails each controller's privacy contact its part of the day's digest, and the agency's privacy
    mailbox every controller's; logs a warning for each controller with a request due within 3 days
    or overdue."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.requests.digest import build_digests, digest_mails, privacy_contacts

        _, today = run_days(context)
        digests = build_digests(vault, today=today)
        for digest in digests:
            if warning := digest.warning():
                self.log.warning(warning)
        contacts = privacy_contacts(vault)
        self.addressed(contacts, [d.controller_id for d in digests if d.has_work], "digest")
        mailbox = self.workflow.privacy_mailbox
        if not mailbox:
            self.log.warning("No agency privacy mailbox (GDPR_PRIVACY_MAILBOX): the agency's digest is not mailed")
        mails = digest_mails(digests, contacts=contacts, agency_mailbox=mailbox, page_url=privacy_page_url(),
                             today=today)
        self.send(mails)
        return {"day": today.isoformat(), "mails": len(mails),
                "urgent": sum(len(d.urgent) for d in digests), "overdue": sum(len(d.overdue) for d in digests)}


class ReadyNoticeOperator(PrivacyMailOperator):
    """Tells each controller's privacy contact which of its requests were completed in the run's
    interval and where each response is in the outbox; each notice is audited, and never sent twice."""

    def execute_on_vault(self, vault: Vault, context: Context) -> dict:
        from include.requests.digest import privacy_contacts, ready_mails, ready_responses, record_ready_notices

        since, today = run_days(context)
        ready = ready_responses(vault, since=since, until=today)
        contacts = privacy_contacts(vault)
        self.addressed(contacts, {r.controller_id for r in ready}, "notice of responses ready")

        def told(mail: Mail) -> None:
            record_ready_notices(vault, [r for r in ready if r.controller_id in mail.controller_ids],
                                 actor=self.actor, at=utcnow())

        mails = ready_mails(ready, contacts=contacts, page_url=privacy_page_url(), today=today)
        self.send(mails, told)
        return {"since": since.isoformat(), "until": today.isoformat(), "mails": len(mails),
                "cases": [r.case_reference for r in ready]}

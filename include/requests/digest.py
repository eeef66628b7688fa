"""The daily privacy digest, and the notice that a response is ready.

**Digest**: per controller, what its requests and complaints need: requests due within 7 days
(those due within 3 days marked urgent), overdue, awaiting review, awaiting identity, paused, and
complaints to acknowledge with the date each must be acknowledged by (DUAA 2025: within 30 days).
Each controller's privacy contact gets its own part; the agency's privacy mailbox gets every
controller's.

**Ready notice**: the controller's contact is told which of its requests were completed in a period
and where each response (package or confirmation) is in the outbox, as a path relative to it.

What a mail may hold: case references, complaint references, kinds, statuses, counts, dates, outbox
paths and the link to the Privacy requests page. Never a person's value: nothing here reads a
request's identities, and the register holds none in plain text.

Due soon and overdue are as the caseload's dashboard counts them (include/requests/caseload.py): on
24 November 2026 a request due on 26 November is due soon and urgent (2 days left); one due on 1
December is due soon (7 days left); one due on 20 November is overdue. A request whose clock is
stopped (paused, or awaiting identity) has a due date that moves on while it is, and is listed
under its status as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import parseaddr

from sqlalchemy import select

from include.common.reports import html_bytes, plural, uk_date
from include.requests.caseload import DUE_SOON_DAYS, CaseLine, ControllerFigures, caseload, dashboard, timeline
from include.requests.complaints import Complaint, complaints
from include.requests.kinds import ACCESS, RIGHT_LABELS
from include.requests.register import get_request
from include.vault.schema import controller_detail
from include.vault.store import Vault

URGENT_DAYS = 3
KIND_LABELS = {ACCESS: "Access", **RIGHT_LABELS}
TEMPLATE = "digest_email.html.j2"
NOTICE_ACTION = "request.ready_notice"  # audited: the controller was told the response is ready


def contact_address(contact: str | None) -> str | None:
    """The email address in a controller's contact, as its instruction file gives it: an address,
    a name and address (`Jo Bloggs <privacy@shop.example>`), or a description and an address after
    a semicolon (`Managing Director, Shop Ltd, 3 Market Street; privacy@shop.example`). None when
    there is no address in it.

    >>> contact_address("Director, Glencoe Outdoor Supplies Ltd; privacy@glencoe-outdoor.example")
    'privacy@glencoe-outdoor.example'
    >>> contact_address("Data Protection Lead <dpo@oak-home.example>")
    'dpo@oak-home.example'
    >>> contact_address("Managing Director, Fenland Cycles Ltd") is None
    True
    """
    for part in (contact or "").split(";"):
        _name, address = parseaddr(part.strip())
        if "@" in address.strip("@"):
            return address
    return None


def privacy_contacts(vault: Vault) -> dict[str, str | None]:
    """Each registered controller's privacy contact address (None when its contact has none)."""
    with vault.engine.connect() as conn:
        recorded = dict(conn.execute(select(controller_detail.c.controller_id, controller_detail.c.contact)).all())
    return {controller_id: contact_address(recorded.get(controller_id)) for controller_id in vault.controller_ids()}


def reference(line: CaseLine) -> str:
    """The request's case reference (its id for one registered before references existed)."""
    return line.case_reference or line.request_id


def is_due_soon(line: CaseLine) -> bool:
    """Open, not overdue, and due within DUE_SOON_DAYS."""
    return line.days_left is not None and not line.overdue and line.days_left <= DUE_SOON_DAYS


def is_urgent(line: CaseLine) -> bool:
    """Due soon, within URGENT_DAYS."""
    return is_due_soon(line) and line.days_left is not None and line.days_left <= URGENT_DAYS


@dataclass(frozen=True)
class ControllerDigest:
    """What one controller's requests and complaints need, as of a day."""

    controller_id: str
    name: str
    figures: ControllerFigures
    due_soon: tuple[CaseLine, ...]  # due within DUE_SOON_DAYS, soonest first
    overdue: tuple[CaseLine, ...]  # most overdue first
    awaiting_review: tuple[CaseLine, ...]
    awaiting_identity: tuple[CaseLine, ...]
    paused: tuple[CaseLine, ...]
    complaints_to_acknowledge: tuple[Complaint, ...]  # soonest acknowledge-by first

    def request_sections(self) -> list[tuple[str, tuple[CaseLine, ...]]]:
        """The lists of requests with their headings, in the mail's order; empty ones left out."""
        sections = [(f"Due within {DUE_SOON_DAYS} days", self.due_soon), ("Overdue", self.overdue),
                    ("Awaiting review", self.awaiting_review),
                    ("Awaiting identity (clock stopped)", self.awaiting_identity),
                    ("Paused (clock stopped)", self.paused)]
        return [(title, lines) for title, lines in sections if lines]

    @property
    def urgent(self) -> tuple[CaseLine, ...]:
        """Requests due within URGENT_DAYS."""
        return tuple(line for line in self.due_soon if is_urgent(line))

    @property
    def has_work(self) -> bool:
        """Whether there is anything for the controller to know: an open request or a complaint to acknowledge."""
        return self.figures.open > 0 or bool(self.complaints_to_acknowledge)

    def warning(self) -> str | None:
        """One line for the task log when a request is urgent or overdue: counts and case references."""
        if not self.urgent and not self.overdue:
            return None
        return (f"{self.controller_id}: {plural(len(self.urgent), 'request')} due within {URGENT_DAYS} days"
                f"{_cases(self.urgent)}, {len(self.overdue)} overdue{_cases(self.overdue)}")


def _cases(lines: Sequence[CaseLine]) -> str:
    return f" ({', '.join(reference(line) for line in lines)})" if lines else ""


def build_digests(vault: Vault, *, today: date) -> list[ControllerDigest]:
    """Every registered controller's digest as of `today`, by controller id."""
    names = {registered.id: registered.name for registered in vault.controllers()}
    figures = {found.controller_id: found for found in dashboard(vault, today=today)}
    lines = caseload(vault, today=today, open_only=True)
    pending = [c for c in complaints(vault, today=today, open_only=True) if c.acknowledged_on is None]
    return [_digest(controller_id, name, figures[controller_id],
                    [line for line in lines if line.controller_id == controller_id],
                    [c for c in pending if c.controller_id == controller_id])
            for controller_id, name in sorted(names.items())]


def _digest(controller_id: str, name: str, figures: ControllerFigures, lines: list[CaseLine],
            pending: list[Complaint]) -> ControllerDigest:
    by_due = sorted(lines, key=lambda line: line.due_on)

    def having(status: str) -> tuple[CaseLine, ...]:
        return tuple(line for line in by_due if line.status == status)

    return ControllerDigest(
        controller_id=controller_id, name=name, figures=figures,
        due_soon=tuple(line for line in by_due if is_due_soon(line)),
        overdue=tuple(line for line in by_due if line.overdue),
        awaiting_review=having("awaiting_review"), awaiting_identity=having("awaiting_id"), paused=having("paused"),
        complaints_to_acknowledge=tuple(sorted(pending, key=lambda c: c.acknowledge_by)))


@dataclass(frozen=True)
class ReadyResponse:
    """A completed request whose response (package or confirmation) is in the controller's outbox."""

    request_id: str
    controller_id: str
    case_reference: str
    kind: str
    closed_on: date
    outbox_path: str  # relative to the outbox


def ready_responses(vault: Vault, *, since: date, until: date) -> list[ReadyResponse]:
    """The requests completed on a day from `since` up to, not including, `until` whose response is
    in the outbox (a request closed without one is not ready for anything) and whose controller has
    not been told yet (a retried or repeated run tells no one twice), by controller and case."""
    ready = []
    for line in caseload(vault, today=until, status="completed"):
        if line.closed_on is None or not since <= line.closed_on < until:
            continue
        package = get_request(vault, line.request_id).package
        if package and not any(event["action"] == NOTICE_ACTION for event in timeline(vault, line.request_id)):
            ready.append(ReadyResponse(line.request_id, line.controller_id, reference(line), line.kind,
                                       line.closed_on, package))
    return sorted(ready, key=lambda r: (r.controller_id, r.case_reference))


def record_ready_notices(vault: Vault, told: Iterable[ReadyResponse], *, actor: str, at: datetime) -> None:
    """Audit that each response's controller was told it is ready."""
    with vault.engine.begin() as conn:
        for response in told:
            vault.audit.append(conn, at=at, actor=actor, action=NOTICE_ACTION, controller_id=response.controller_id,
                               details={"request": response.request_id, "case": response.case_reference})


@dataclass(frozen=True)
class Mail:
    """A mail ready to send: recipients, subject, a plain-text part and the same in HTML."""

    to: str
    subject: str
    text: str
    html: str
    controller_ids: tuple[str, ...]  # whose cases it is about
    audience: str  # for the task log: the controller's id, or "the agency"

    def message(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


def digest_mails(digests: Sequence[ControllerDigest], *, contacts: Mapping[str, str | None],
                 agency_mailbox: str | None, page_url: str, today: date) -> list[Mail]:
    """One mail to each controller with work whose contact has an address (its own digest), and one
    to the agency's mailbox with every controller's."""
    mails = [_digest_mail((digest,), to, digest.controller_id, page_url, today,
                          f"{digest.name}{_urgent_note((digest,))}")
             for digest in digests if digest.has_work and (to := contacts.get(digest.controller_id))]
    if agency_mailbox:
        mails.append(_digest_mail(tuple(digests), agency_mailbox, "the agency", page_url, today,
                                  f"{plural(len(digests), 'client')}{_urgent_note(digests)}"))
    return mails


def _urgent_note(digests: Iterable[ControllerDigest]) -> str:
    pressing = sum(len(d.urgent) + len(d.overdue) for d in digests)
    return f" ({pressing} urgent or overdue)" if pressing else ""


def _digest_mail(digests: tuple[ControllerDigest, ...], to: str, audience: str, page_url: str, today: date,
                 about: str) -> Mail:
    subject = f"Privacy requests digest, {uk_date(today)}: {about}"
    return Mail(to, subject, _digest_text(digests, page_url, today),
                _html(subject, page_url, today, digests=digests), tuple(d.controller_id for d in digests), audience)


def _html(title: str, page_url: str, today: date, *, digests: Sequence[ControllerDigest] = (),
          ready: Sequence[ReadyResponse] = ()) -> str:
    return html_bytes(TEMPLATE, title=title, digests=digests, ready=ready, page_url=page_url, today=today,
                      due_soon_days=DUE_SOON_DAYS, urgent_days=URGENT_DAYS, kinds=KIND_LABELS,
                      is_urgent=is_urgent, reference=reference).decode()


def ready_mails(ready: Sequence[ReadyResponse], *, contacts: Mapping[str, str | None], page_url: str,
                today: date) -> list[Mail]:
    """One mail to each controller with responses ready whose contact has an address."""
    mails = []
    for controller_id in sorted({r.controller_id for r in ready}):
        if not (to := contacts.get(controller_id)):
            continue
        own = tuple(r for r in ready if r.controller_id == controller_id)
        subject = (f"Ready in the outbox: {own[0].case_reference}" if len(own) == 1
                   else f"Ready in the outbox: {len(own)} responses")
        mails.append(Mail(to, subject, _ready_text(own, page_url), _html(subject, page_url, today, ready=own),
                          (controller_id,), controller_id))
    return mails


# -- the plain-text parts: the HTML template's content, line by line --------------------------------

def _request_line(line: CaseLine) -> str:
    days = line.days_left or 0
    when = f"{plural(-days, 'day')} overdue" if line.overdue else f"{plural(days, 'day')} left"
    urgent = "URGENT  " if is_urgent(line) else ""
    return (f"  {urgent}{reference(line)}  {KIND_LABELS.get(line.kind, line.kind)}, {line.status_label}, "
            f"due {uk_date(line.due_on)} ({when})")


def _section(title: str, items: Sequence[str]) -> list[str]:
    return [f"{title}: {len(items)}", *items, ""] if items else []


def _digest_text(digests: Sequence[ControllerDigest], page_url: str, today: date) -> str:
    lines = [f"Privacy requests digest, {uk_date(today)}", "",
             f"Requests marked URGENT are due within {URGENT_DAYS} days.", ""]
    for digest in digests:
        figures = digest.figures
        lines += [digest.name, "=" * len(digest.name),
                  f"Open requests: {figures.open}. Completed in the last 90 days: {figures.completed_90}, "
                  f"{figures.on_time_90} on time.", ""]
        if not digest.has_work:
            lines += ["Nothing open.", ""]
            continue
        for title, requests in digest.request_sections():
            lines += _section(title, [_request_line(line) for line in requests])
        lines += _section("Complaints to acknowledge", [
            f"  {c.reference}  received {uk_date(c.received_on)}, acknowledge by {uk_date(c.acknowledge_by)}"
            f"{' (overdue)' if c.overdue else ''}" for c in digest.complaints_to_acknowledge])
    return "\n".join([*lines, f"Privacy requests page: {page_url}", ""])


def _ready_text(ready: Sequence[ReadyResponse], page_url: str) -> str:
    lines = ["These responses are ready in the outbox:", ""]
    lines += [f"  {r.case_reference}  {KIND_LABELS.get(r.kind, r.kind)}, completed {uk_date(r.closed_on)}: "
              f"{r.outbox_path}" for r in ready]
    return "\n".join([*lines, "", f"Privacy requests page: {page_url}", ""])

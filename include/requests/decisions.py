"""What staff decide about a request, and the letters those decisions need: a refusal (with its
reasons, the right to complain to the ICO and to seek a judicial remedy: Art. 12(4)), an extension
(with its reasons and the new date, told within the first month: Art. 12(3)), and the release of a
package held for review. Each letter goes to the controller's outbox, for the controller to send;
it names the person by the case reference only.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select

from include.common.errors import InvalidInput
from include.common.reports import write_html
from include.requests.pipeline import RequestSettings, held_dir
from include.requests.register import (
    REFUSAL_REASONS,
    Request,
    complete_request,
    extend_request,
    get_request,
    refuse_request,
    with_case_reference,
)
from include.vault.schema import controller, controller_detail
from include.vault.store import Vault


def letter_path(outbox: Path, request: Request, letter: str) -> Path:
    return Path(outbox) / request.controller_id / f"{letter}-{request.case_reference}.html"


def _write_letter(vault: Vault, request: Request, settings: RequestSettings, letter: str, *, reason: str,
                  on: date) -> Path:
    with vault.engine.connect() as conn:
        named = conn.execute(select(controller.c.name, controller_detail.c.contact).outerjoin(
            controller_detail, controller_detail.c.controller_id == controller.c.id).where(
            controller.c.id == request.controller_id)).one()
    return write_html(letter_path(settings.outbox_dir, request, letter), "request_letter.html.j2", letter=letter,
                      kind=request.kind, case=request.case_reference, controller_name=named.name,
                      contact=named.contact, received_on=request.received_on, written_on=on, reason=reason,
                      due_on=request.due_on, months=request.extension_months)


def refuse(vault: Vault, request_id: str, settings: RequestSettings, *, reason: str, actor: str,
           at: datetime) -> Path:
    """Refuse the request for one of REFUSAL_REASONS; a package held for review is destroyed. Returns
    the refusal letter's path."""
    if reason not in REFUSAL_REASONS:
        raise InvalidInput(f"a refusal's reason is one of {', '.join(REFUSAL_REASONS)}, not '{reason}'")
    request = with_case_reference(vault, get_request(vault, request_id), actor=actor, at=at)
    held = request.package if request.status == "awaiting_review" else None
    refused = refuse_request(vault, request.id, reason=reason, actor=actor, at=at)
    if held:
        (held_dir(settings) / held).unlink(missing_ok=True)
    path = _write_letter(vault, refused, settings, "refusal", reason=REFUSAL_REASONS[reason], on=at.date())
    vault.record_event("request.letter", actor=actor, at=at, controller_id=request.controller_id,
                       details={"request": request.id, "case": request.case_reference, "letter": "refusal",
                                "path": str(path.relative_to(settings.outbox_dir))})
    return path


def extend(vault: Vault, request_id: str, settings: RequestSettings, *, months: int, reason: str,
           notified_on: date, actor: str, at: datetime) -> Path:
    """Extend the request (refused once its first month is over); returns the extension letter's path."""
    request = with_case_reference(vault, get_request(vault, request_id), actor=actor, at=at)
    extended = extend_request(vault, request.id, months=months, reason=reason, notified_on=notified_on, actor=actor,
                              at=at)
    path = _write_letter(vault, extended, settings, "extension", reason=reason.strip().rstrip("."), on=notified_on)
    vault.record_event("request.letter", actor=actor, at=at, controller_id=request.controller_id,
                       details={"request": request.id, "case": request.case_reference, "letter": "extension",
                                "path": str(path.relative_to(settings.outbox_dir))})
    return path


def release(vault: Vault, request_id: str, settings: RequestSettings, *, actor: str, at: datetime) -> Path:
    """Deliver a package held for review to the outbox and complete the request; returns its path."""
    request = get_request(vault, request_id)
    if request.status != "awaiting_review" or not request.package:
        raise InvalidInput(f"request {request.case_reference or request.id} has no package awaiting review")
    held = held_dir(settings) / request.package
    delivered = Path(settings.outbox_dir) / request.package
    delivered.parent.mkdir(parents=True, exist_ok=True)
    if held.exists():  # absent when an earlier release moved it and stopped before completing the request
        shutil.move(held, delivered)
    if not delivered.exists():
        raise InvalidInput(f"the package of request {request.case_reference or request.id} is missing: "
                           f"it was held at {held}")
    complete_request(vault, request.id, package=request.package, actor=actor, at=at)
    return delivered

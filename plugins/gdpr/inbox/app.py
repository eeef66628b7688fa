"""The app behind the "Privacy requests" page: the caseload, a request's page and its actions, the
complaints, the dashboard, and the caseload as JSON for other systems.

Pages are rendered here (Jinja2) and actions are plain HTML forms, each a POST that answers with a
redirect back to the page it came from (or that page again, with the core's refusal in plain words).
The vault is opened per HTTP request through the operators' hook (the `gdpr_vault_default`
connection). Nothing here logs: a person's identities are shown on their request's page to staff who
may act, and go nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from gdpr.hooks.vault import VaultHook
from gdpr.inbox import URL_PREFIX, charts
from gdpr.inbox.access import ActingDep, EntrustedDep, Staff, StaffDep
from gdpr.inbox.runs import runs_naming, runs_page, workflow_of
from gdpr.operators.requests import request_settings
from include.common.clock import utcnow
from include.common.errors import DataKeyDestroyed, GdprError, InvalidInput, UnknownRecord
from include.common.reports import plural, uk_date
from include.common.settings import WorkflowSettings
from include.requests.caseload import STATUS_LABELS, CaseLine, case_line, caseload, dashboard, timeline
from include.requests.complaints import (
    OUTCOMES,
    acknowledge_complaint,
    close_complaint,
    complaints,
    register_complaint,
)
from include.requests.decisions import extend, refuse, release
from include.requests.kinds import ACCESS, KINDS, RIGHT_LABELS
from include.requests.pipeline import held_dir
from include.requests.register import (
    PAUSE_REASONS,
    REFUSAL_REASONS,
    close_request,
    find_request,
    pause_request,
    possible_matches,
    resume_request,
    show_identities,
    verify_identity,
)
from include.requests.register import Request as CaseRequest
from include.vault.schema import CLOSED_STATUSES
from include.vault.store import Vault

KIND_LABELS = {ACCESS: "Access", **RIGHT_LABELS}
# Art. 12(3)'s grounds for more time, as the extension letter words them ("... because <reason>").
EXTENSION_REASONS = {"complex": "your request is complex",
                     "numerous": "you have made a number of requests to us"}
# Reasons staff choose when refusing; a rejected package and a closure have their own buttons.
STAFF_REFUSALS = {code: words for code, words in REFUSAL_REASONS.items()
                  if code not in ("package_rejected", "closed_without_answer", "restricted")}
PAUSE_LABELS = {"identity": "the requester's identity", "clarification": "a clarification", "fee": "a fee"}
IDENTITY_LABELS = {"email": "Email address", "phone": "Phone number", "customer_number": "Customer number",
                   "ip": "IP address", "name": "Name"}
DONE = {"verify": "The identity is marked as verified: the clock runs from that day.",
        "pause": "The request is paused: its clock has stopped.",
        "resume": "The request is resumed: the paused days moved its due date on.",
        "extend": "The request is extended; the extension letter is in the controller's outbox.",
        "refuse": "The request is refused; the refusal letter is in the controller's outbox.",
        "release": "The package is released to the controller's outbox and the request is completed.",
        "reject": "The package is rejected and destroyed; the refusal letter is in the controller's outbox.",
        "close": "The request is closed.",
        "complaint": "The complaint is registered.",
        "acknowledge": "The complaint is marked as acknowledged.",
        "close_complaint": "The complaint is closed with its outcome."}

templates = Environment(loader=PackageLoader("gdpr.inbox", "templates"), undefined=StrictUndefined,
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def said(value: object) -> str:
    """An audit detail as the page says it: a day as a UK reader writes it, a list as words."""
    if isinstance(value, list):
        return ", ".join(said(item) for item in value)
    if isinstance(value, str):
        try:
            return uk_date(date.fromisoformat(value))
        except ValueError:
            return value
    return str(value)


def action_words(action: str) -> str:
    """An audited action in words: request.identity_verified is "request: identity verified"."""
    return action.replace(".", ": ", 1).replace("_", " ")


templates.filters.update(uk_date=uk_date, plural=plural, said=said, action_words=action_words)
templates.globals.update(STATUS_LABELS=STATUS_LABELS, KIND_LABELS=KIND_LABELS, PAUSE_LABELS=PAUSE_LABELS,
                         REFUSAL_REASONS=REFUSAL_REASONS,
                         IDENTITY_LABELS=IDENTITY_LABELS, OUTCOMES=OUTCOMES, charts=charts)


def open_vault() -> Iterator[Vault]:
    with VaultHook().get_conn() as vault:
        yield vault


VaultDep = Annotated[Vault, Depends(open_vault)]


async def read_form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(read_form)]


def roots(request: Request) -> tuple[str, str]:
    """Where this app is (its mount point) and where the Airflow UI is, as paths for links."""
    here = request.scope.get("root_path", "")
    return here, here.removesuffix(URL_PREFIX)


def render(request: Request, template: str, staff: Staff | None, *, status_code: int = 200, **context) -> HTMLResponse:
    here, ui_root = roots(request)
    html = templates.get_template(template).render(here=here, ui_root=ui_root, staff=staff,
                                                   done=DONE.get(request.query_params.get("done", "")), **context)
    return HTMLResponse(html, status_code=status_code)


def day(form: FormData, field: str, what: str) -> date:
    """A date field of a form (an <input type="date"> sends 2026-11-24)."""
    text = str(form.get(field) or "").strip()
    try:
        return date.fromisoformat(text)
    except ValueError:  # what was sent is not quoted back: the page says what the field needs
        raise InvalidInput(f"{what} must be a date" if text else f"{what} is missing") from None


def choice(form: FormData, field: str, choices, what: str) -> str:
    value = str(form.get(field) or "")
    if value not in choices:
        raise InvalidInput(f"Choose {what}.")
    return value


def filters(request: Request) -> dict[str, str | None]:
    """The caseload's filters from the query: empty means any."""
    return {name: request.query_params.get(name) or None for name in ("controller", "status", "kind", "show")}


def lines_for(vault: Vault, chosen: dict[str, str | None], today: date) -> list[CaseLine]:
    return caseload(vault, today=today, controller_id=chosen["controller"], status=chosen["status"],
                    kind=chosen["kind"], open_only=chosen["show"] != "all")


pages = APIRouter()


def create_app() -> FastAPI:
    app = FastAPI(title="Privacy requests", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_exception_handler(StarletteHTTPException, refused)
    app.include_router(pages)
    return app


def refused(request: Request, error: Exception) -> Response:
    """A refusal (401, 403, 404) as a page for a browser, with the way to log in; as JSON for other callers."""
    assert isinstance(error, StarletteHTTPException)
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
    here, ui_root = roots(request)
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = templates.get_template("refused.html").render(
        here=here, ui_root=ui_root, staff=None, done=None, message=error.detail,
        login=f"{ui_root}/api/v2/auth/login?{urlencode({'next': back})}", logged_out=error.status_code == 401)
    return HTMLResponse(html, status_code=error.status_code)


@pages.get("/", response_class=HTMLResponse)
def caseload_page(request: Request, staff: StaffDep, vault: VaultDep) -> HTMLResponse:
    chosen = filters(request)
    try:
        lines, error = lines_for(vault, chosen, utcnow().date()), None
    except InvalidInput as refusal:
        lines, error = [], str(refusal)
    return render(request, "caseload.html", staff, status_code=400 if error else 200, lines=lines,
                  chosen=chosen, controllers=vault.controller_ids(), kinds=KINDS, error=error)


@pages.get("/api/caseload")
def caseload_json(request: Request, staff: StaffDep, vault: VaultDep) -> JSONResponse:
    """The caseload as JSON (case references, dates and counts: no personal values), with the page's filters."""
    try:
        lines = lines_for(vault, filters(request), utcnow().date())
    except InvalidInput as refusal:
        raise HTTPException(400, str(refusal)) from None
    return JSONResponse(jsonable_encoder(lines))


@pages.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, staff: StaffDep, vault: VaultDep) -> HTMLResponse:
    names = {c.id: c.name for c in vault.controllers()}
    return render(request, "dashboard.html", staff, figures=dashboard(vault, today=utcnow().date()), names=names)


@pages.get("/requests/{case}", response_class=HTMLResponse)
def request_page(request: Request, case: str, staff: StaffDep, vault: VaultDep) -> HTMLResponse:
    return render(request, "request.html", staff, **request_context(request, vault, found(vault, case), staff))


@pages.post("/requests/{case}/{action}")
def act_on_request(request: Request, case: str, action: str, staff: ActingDep, vault: VaultDep,
                   form: FormDep) -> Response:
    if action not in REQUEST_ACTIONS:
        raise HTTPException(404, "There is no such action on a request.")
    subject = found(vault, case)
    try:
        REQUEST_ACTIONS[action](vault, subject, form, staff)
    except GdprError as refusal:
        return render(request, "request.html", staff, status_code=400,
                      **{**request_context(request, vault, find_request(vault, subject.id), staff),
                         "error": str(refusal)})
    return RedirectResponse(f"{roots(request)[0]}/requests/{quote(case)}?done={action}", status_code=303)


@pages.get("/requests/{case}/files/{name:path}")
def request_file(case: str, name: str, staff: EntrustedDep, vault: VaultDep) -> FileResponse:
    """A file the request's page lists (its package, confirmation or a letter), as a download."""
    subject = found(vault, case)
    listed = dict(request_files(subject, timeline(vault, subject.id)))
    if name not in listed or not listed[name].is_file():
        raise HTTPException(404, "That file is not one of this request's.")
    return FileResponse(listed[name], filename=Path(name).name)


@pages.get("/complaints", response_class=HTMLResponse)
def complaints_page(request: Request, staff: StaffDep, vault: VaultDep) -> HTMLResponse:
    return render(request, "complaints.html", staff, **complaints_context(request, vault))


@pages.post("/complaints")
def new_complaint(request: Request, staff: ActingDep, vault: VaultDep, form: FormDep) -> Response:
    return on_complaints(request, vault, staff, lambda: _register(vault, form, staff), "complaint")


@pages.post("/complaints/{reference}/{action}")
def act_on_complaint(request: Request, reference: str, action: str, staff: ActingDep, vault: VaultDep,
                     form: FormDep) -> Response:
    if action not in COMPLAINT_ACTIONS:
        raise HTTPException(404, "There is no such action on a complaint.")
    done = "close_complaint" if action == "close" else action
    return on_complaints(request, vault, staff, lambda: COMPLAINT_ACTIONS[action](vault, reference, form, staff), done)


def found(vault: Vault, case: str) -> CaseRequest:
    try:
        return find_request(vault, case)
    except UnknownRecord:
        raise HTTPException(404, f"There is no request {case}.") from None


def request_files(subject: CaseRequest, events: list[dict]) -> list[tuple[str, Path]]:
    """The request's files, by the path the page shows (under the outbox): its package or confirmation,
    held back while it awaits review, and the letters written for it (events: its timeline)."""
    settings = request_settings(WorkflowSettings())
    files = []
    if subject.package:
        place = held_dir(settings) if subject.status == "awaiting_review" else settings.outbox_dir
        files.append((subject.package, Path(place) / subject.package))
    for event in events:
        if event["action"] == "request.letter":
            files.append((event["details"]["path"], Path(settings.outbox_dir) / event["details"]["path"]))
    return files


def request_context(request: Request, vault: Vault, subject: CaseRequest, staff: Staff) -> dict:
    today = utcnow().date()
    line = case_line(vault, subject.id, today=today)
    events = timeline(vault, subject.id)
    identities: list[tuple[str, str]] | None = None  # None: not asked for
    if staff.may_act and request.query_params.get("identities") == "show":  # each showing audited
        identities = []
        with suppress(DataKeyDestroyed):  # the accountability period is over: the identities went with its key
            identities = show_identities(vault, subject.id, actor=staff.actor, at=utcnow())
    workflow = workflow_of(subject.kind)
    ui_root = roots(request)[1]
    return {"subject": subject, "line": line, "events": events, "identities": identities,
            "searched": [event for event in events if "store" in event["details"]],
            "matches": possible_matches(vault, subject.id), "runs": runs_naming(subject.id, ui_root),
            "workflow": workflow, "workflow_runs": runs_page(ui_root, workflow),
            "files": [name for name, path in request_files(subject, events) if path.is_file()],
            "complaints": complaints(vault, today=today, request_id=subject.id), "today": today,
            "pause_reasons": PAUSE_REASONS, "refusals": STAFF_REFUSALS, "extension_reasons": EXTENSION_REASONS,
            "closing": CLOSED_STATUSES, "error": None}


def complaints_context(request: Request, vault: Vault) -> dict:
    today = utcnow().date()
    chosen = filters(request)
    cases = {line.request_id: line.case_reference for line in caseload(vault, today=today)}
    return {"complaints": complaints(vault, today=today, controller_id=chosen["controller"],
                                     open_only=chosen["show"] != "all"),
            "cases": cases, "chosen": chosen, "controllers": vault.controller_ids(), "today": today, "error": None}


# -- the actions: each reads its form, calls the core once, and is audited there with the staff's name --

def _verify(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    verify_identity(vault, subject.id, on=day(form, "on", "The day the identity was verified"), actor=staff.actor,
                    at=utcnow())


def _pause(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    pause_request(vault, subject.id, on=day(form, "on", "The day the clock stops"),
                  reason=choice(form, "reason", PAUSE_REASONS, "what the request waits for"), actor=staff.actor,
                  at=utcnow())


def _resume(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    resume_request(vault, subject.id, on=day(form, "on", "The day the clock restarts"), actor=staff.actor, at=utcnow())


def _extend(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    months = choice(form, "months", ("1", "2"), "one or two further months")
    reason = EXTENSION_REASONS[choice(form, "reason", EXTENSION_REASONS, "the reason for more time")]
    extend(vault, subject.id, request_settings(WorkflowSettings()), months=int(months), reason=reason,
           notified_on=day(form, "notified_on", "The day the person was told"), actor=staff.actor, at=utcnow())


def _refuse(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    refuse(vault, subject.id, request_settings(WorkflowSettings()),
           reason=choice(form, "reason", STAFF_REFUSALS, "the reason for the refusal"), actor=staff.actor, at=utcnow())


def _release(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    release(vault, subject.id, request_settings(WorkflowSettings()), actor=staff.actor, at=utcnow())


def _reject(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    refuse(vault, subject.id, request_settings(WorkflowSettings()), reason="package_rejected", actor=staff.actor,
           at=utcnow())


def _close(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    close_request(vault, subject.id, status=choice(form, "status", CLOSED_STATUSES, "how the request closes"),
                  actor=staff.actor, at=utcnow())


def _complaint(vault: Vault, subject: CaseRequest, form: FormData, staff: Staff) -> None:
    register_complaint(vault, controller_id=subject.controller_id, request_id=subject.id,
                       received_on=day(form, "received_on", "The day the complaint arrived"), actor=staff.actor,
                       at=utcnow())


RequestAction = Callable[[Vault, CaseRequest, FormData, Staff], None]
REQUEST_ACTIONS: dict[str, RequestAction] = {
    "verify": _verify, "pause": _pause, "resume": _resume, "extend": _extend, "refuse": _refuse,
    "release": _release, "reject": _reject, "close": _close, "complaint": _complaint}


def on_complaints(request: Request, vault: Vault, staff: Staff, action: Callable[[], object], done: str) -> Response:
    """Do a complaint's action; back to the complaints page, with the core's refusal if it refused."""
    try:
        action()
    except GdprError as refusal:
        return render(request, "complaints.html", staff, status_code=400,
                      **{**complaints_context(request, vault), "error": str(refusal)})
    return RedirectResponse(f"{roots(request)[0]}/complaints?done={done}", status_code=303)


def _register(vault: Vault, form: FormData, staff: Staff) -> None:
    """A complaint on its own, or about a request named by its case reference."""
    about = str(form.get("request") or "").strip()
    register_complaint(vault, controller_id=choice(form, "controller", vault.controller_ids(), "the controller"),
                       request_id=about or None,
                       received_on=day(form, "received_on", "The day the complaint arrived"), actor=staff.actor,
                       at=utcnow())


def _acknowledge(vault: Vault, reference: str, form: FormData, staff: Staff) -> None:
    acknowledge_complaint(vault, reference, on=day(form, "on", "The day it was acknowledged"), actor=staff.actor,
                          at=utcnow())


def _close_complaint(vault: Vault, reference: str, form: FormData, staff: Staff) -> None:
    close_complaint(vault, reference, on=day(form, "on", "The day the outcome was told"),
                    outcome=choice(form, "outcome", OUTCOMES, "the outcome"), actor=staff.actor, at=utcnow())


ComplaintAction = Callable[[Vault, str, FormData, Staff], None]
COMPLAINT_ACTIONS: dict[str, ComplaintAction] = {
    "acknowledge": _acknowledge, "close": _close_complaint}

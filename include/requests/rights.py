"""Rectification, erasure, restriction and objection requests (Art. 16-18, 21), in steps like access
requests' (see access.py), so that a workflow can act on each store in its own task:

1. plan: the identities the request gives and those the vault links to them, kept (encrypted) in
   the request's work directory from the first run on, so a retry works with what was found before
   anything changed. Restricting, lifting a restriction and objecting happen here, in the vault.
   Erasure and rectification return the (request, store) pairs of the vault and the SQL stores;
   a rectification of restricted data is refused here, before any store changes.
2. act on one store for one request: plan the store's part (kept, so a retry applies the same
   plan), then apply it.
3. plan_logs (erasure): the server logs, with every IP address the stores linked to the person.
4. confirm: when every store has been acted on, the confirmation report (what was done in each
   store, what was kept, why and until when), delivered to the controller's outbox; the request is
   completed. An objection on other grounds than direct marketing stays open for the controller's
   decision, the person's data restricted meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

from include.disclosures import as_told, disclosures_of, load_register
from include.errors import InvalidInput, Restricted, StoreUnavailable, UnknownRecord
from include.files import write_atomically
from include.marketing import suppress
from include.policies.instructions import InstructionBook
from include.reports import html_bytes, json_bytes
from include.requests.access import AccessSettings, Workspace
from include.requests.gather import IDENTITY_STORES, LOG_STORES, Stores, first_identities
from include.requests.register import (
    Request,
    complete_request,
    get_request,
    record_possible_matches,
    refuse_request,
    register_request,
    request_corrections,
    request_identities,
    start_request,
)
from include.requests.restriction import lift_restrictions, require_unrestricted, restrict
from include.stores.base import Acting
from include.stores.identities import IdentitySet
from include.stores.vault import VAULT_STORE, VaultStore
from include.vault.schema import controller
from include.vault.store import Vault

RIGHTS = ("rectify", "erase", "restrict", "lift_restriction", "object")
RECTIFIABLE = ("email", "phone")
OBJECTION_GROUNDS = ("direct_marketing", "other")
NOTHING_HELD = "no personal data of this person is held in the store"


def register_rights_request(vault: Vault, *, controller_id: str, kind: str, received_on: date,
                            identities: Mapping[str, Sequence[str]], particulars: Mapping[str, str] | None = None,
                            corrections: Mapping[str, str] | None = None, reference: str | None = None,
                            actor: str, at: datetime) -> str:
    """Register a rights request once what the right needs is checked; returns its id."""
    particulars = dict(particulars or {})
    if kind not in RIGHTS:
        raise InvalidInput(f"right '{kind}' is not one of {', '.join(RIGHTS)}")
    if kind == "rectify":
        if not corrections:
            raise InvalidInput("a rectification needs the field to correct and its corrected value")
        for field in corrections:
            if field not in RECTIFIABLE:
                raise InvalidInput(f"field '{field}' cannot be rectified here: rectifiable are "
                                   f"{', '.join(RECTIFIABLE)}")
            if not identities.get(field):
                raise InvalidInput(f"rectifying the {field} needs the person's current {field}, to find it by")
    elif corrections:
        raise InvalidInput(f"corrected values are for a rectification, not for '{kind}'")
    if kind == "lift_restriction":
        try:
            date.fromisoformat(particulars.get("person_told_on") or "")
        except ValueError:
            raise InvalidInput("lifting a restriction needs the day the person was told (Art. 18(3)), "
                               "as YYYY-MM-DD") from None
    if kind == "object" and particulars.get("ground") not in OBJECTION_GROUNDS:
        raise InvalidInput(f"an objection's ground is one of {', '.join(OBJECTION_GROUNDS)}, "
                           f"not {particulars.get('ground')!r}")
    return register_request(vault, controller_id=controller_id, kind=kind, received_on=received_on,
                            identities=identities, particulars=particulars, corrections=corrections,
                            reference=reference, actor=actor, at=at)


def _old_and_new(vault: Vault, request: Request) -> tuple[dict[str, str], dict[str, str]]:
    new = request_corrections(vault, request.id)
    given = dict(request_identities(vault, request.id))
    return {kind: given[kind] for kind in new}, new


def plan(vault: Vault, stores_of, request_ids: list[str], settings: AccessSettings, *, actor: str,
         at: datetime) -> list[dict]:
    """(request, store) pairs to act on; stores_of(controller_id) -> Stores."""
    pairs = []
    for request_id in request_ids:
        request = get_request(vault, request_id)
        if not request.is_open:
            continue  # done by an earlier run: a re-run changes nothing
        if request.kind not in RIGHTS:
            raise InvalidInput(f"request {request_id} is an {request.kind} request, not one of {', '.join(RIGHTS)}")
        stores = stores_of(request.controller_id)
        work = Workspace(vault, settings.work_dir, request_id)
        saved = work.load("identities", at)
        identities = (IdentitySet.from_json(saved) if saved is not None else
                      first_identities(stores, IdentitySet.given(request_identities(vault, request_id))))
        if saved is None:
            work.save("identities", identities.to_json(), at)
        if request.status == "received":
            start_request(vault, request_id, subject_id=request.subject_id, actor=actor, at=at)
        try:
            if request.kind == "erase":
                pairs += [{"request_id": request_id, "store": store} for store in stores.ids(IDENTITY_STORES)]
                continue
            subjects = VaultStore(vault, request.controller_id).subjects(identities)
            if request.kind == "rectify":
                require_unrestricted(vault, controller_id=request.controller_id, subject_ids=subjects,
                                     operation="rectification", actor=actor, at=at)
                pairs += [{"request_id": request_id, "store": store} for store in stores.ids(IDENTITY_STORES)]
            else:
                outcome = _in_vault(vault, request, subjects, identities, actor=actor, at=at)
                work.save(f"store-{VAULT_STORE}", outcome, at)
        except Restricted as refused:
            refuse_request(vault, request_id, reason=str(refused), actor=actor, at=at)
    return pairs


def _in_vault(vault: Vault, request: Request, subjects: list[str], identities: IdentitySet, *, actor: str,
              at: datetime) -> dict:
    """Restrict, lift a restriction, or record an objection: the vault's part is all there is."""
    controller_id, particulars = request.controller_id, request.particulars
    if request.kind == "restrict" or (request.kind == "object" and particulars["ground"] != "direct_marketing"):
        grounds = "person_asked" if request.kind == "restrict" else "objection_pending"
        with vault.engine.begin() as conn:
            for subject_id in subjects:
                restrict(vault, conn, controller_id=controller_id, subject_id=subject_id, grounds=grounds,
                         request_id=request.id, actor=actor, at=at)
        return {"done": [{"table": "data subjects", "action": "restrict", "records": len(subjects)}]}
    if request.kind == "lift_restriction":
        told = date.fromisoformat(particulars["person_told_on"])
        lifted = sum(lift_restrictions(vault, controller_id=controller_id, subject_id=subject_id,
                                       person_told_on=told, actor=actor, at=at, request_id=request.id)
                     for subject_id in subjects)
        return {"done": [{"table": "restrictions", "action": "lift", "records": lifted}]}
    added = sum(suppress(vault, controller_id=controller_id, email=email, actor=actor, at=at, request_id=request.id)
                for email in identities.values("email"))
    return {"done": [{"table": "suppression list", "action": "suppress", "records": added}]}


def act(vault: Vault, stores: Stores, request_id: str, store: str, settings: AccessSettings, *, actor: str,
        at: datetime) -> dict:
    """Erase or rectify in one store for one request; returns what was done there."""
    request = get_request(vault, request_id)
    work = Workspace(vault, settings.work_dir, request_id)
    if not request.is_open:
        return work.load(f"store-{store}", at) or {"done": [], "kept": []}
    known = work.load("identities", at)
    if known is None:
        raise UnknownRecord(f"request {request_id} has not been planned (no identities in the work directory)")
    identities = IdentitySet.from_json(known)
    kind, controller_id = stores.kind(store), request.controller_id
    target = stores.store(store)
    acting = Acting(controller_id, request_id, actor, at, book=InstructionBook.load(vault),
                    progress=_Progress(work, at))
    old, new = _old_and_new(vault, request) if request.kind == "rectify" else ({}, {})
    saved = work.load(f"plan-{store}", at)
    if request.kind == "erase":
        store_plan = (target.erasure_plan(saved) if saved is not None else target.plan_erasure(identities, acting))
    else:
        store_plan = (target.rectification_plan(saved) if saved is not None
                      else target.plan_rectification(identities, old, acting))
    if saved is None:
        work.save(f"plan-{store}", store_plan.model_dump(mode="json"), at)
    result = (target.apply_erasure(store_plan, acting) if request.kind == "erase"
              else target.apply_rectification(store_plan, new, acting))
    record_possible_matches(vault, request_id, store, result.held, at=at)
    outcome = result.model_dump(mode="json")
    if kind != "vault":  # the vault audits its own changes, in their transactions
        with vault.engine.begin() as conn:
            vault.audit.append(conn, at=at, actor=actor, action=f"{request.kind}.store", controller_id=controller_id,
                               subject_id=request.subject_id, details={
                                   "request": request_id, "store": store,
                                   "changed": sum(done["records"] for done in outcome["done"]),
                                   "kept": len(outcome["kept"]), "held": len(outcome["held"])})
    work.save(f"store-{store}", outcome, at)
    return outcome


class _Progress:
    """A long rewrite's progress, kept in the request's work files."""

    def __init__(self, work: Workspace, at: datetime) -> None:
        self.work, self.at = work, at

    def load(self, name: str) -> dict | None:
        return self.work.load(name, self.at)

    def save(self, name: str, data: dict) -> None:
        self.work.save(name, data, self.at)


def plan_logs(vault: Vault, stores_of, request_ids: list[str], settings: AccessSettings, *,
              at: datetime) -> list[dict]:
    """(request, store) pairs of the server logs, for erasures, once the other stores are done."""
    pairs = []
    for request_id in request_ids:
        request = get_request(vault, request_id)
        if not request.is_open or request.kind != "erase":
            continue
        stores = stores_of(request.controller_id)
        work = Workspace(vault, settings.work_dir, request_id)
        every = IdentitySet.from_json(work.load("identities", at))
        for store in stores.ids(IDENTITY_STORES):
            if (store_plan := work.load(f"plan-{store}", at)) is None:
                raise StoreUnavailable(f"request {request_id}: store {store} has not been acted on; "
                                       "the logs wait for every store")
            every.merge(IdentitySet.from_json(store_plan["identities"]))
        work.save("identities", every.to_json(), at)
        pairs += [{"request_id": request_id, "store": store} for store in stores.ids(LOG_STORES)]
    return pairs


def confirmation_path(outbox: Path, request: Request) -> Path:
    return Path(outbox) / request.controller_id / f"{request.kind}-{request.id}.html"


def confirm(vault: Vault, stores: Stores, request_id: str, settings: AccessSettings, *, on: date, actor: str,
            at: datetime) -> dict:
    """Write the confirmation once every store has been acted on; complete the request."""
    request = get_request(vault, request_id)
    path = confirmation_path(settings.outbox_dir, request)
    if not request.is_open and path.exists():
        return {"request_id": request_id, "confirmation": str(path), "status": request.status}
    work = Workspace(vault, settings.work_dir, request_id)
    needed = (stores.ids() if request.kind == "erase" else stores.ids(IDENTITY_STORES)
              if request.kind == "rectify" else [VAULT_STORE])
    results = {store: work.load(f"store-{store}", at) for store in needed}
    if request.is_open and (missing := [store for store, result in results.items() if result is None]):
        raise StoreUnavailable(f"request {request_id}: no outcome from store(s) {', '.join(missing)}; "
                               "nothing is confirmed from a partial run")
    awaiting = request.kind == "object" and request.particulars.get("ground") != "direct_marketing"
    with vault.engine.connect() as conn:
        controller_name = conn.execute(controller.select().where(controller.c.id == request.controller_id)).one().name
    stores_done = [{"store": store, "done": (result or {}).get("done", []), "kept": (result or {}).get("kept", []),
                    "held": len((result or {}).get("held", []))} for store, result in results.items()]
    known = work.load("identities", at)
    erased = (work.load(f"plan-{VAULT_STORE}", at) or {}).get("subjects", [])  # found before their erasure
    subjects = [s["subject_id"] for s in erased] + ([request.subject_id] if request.subject_id else [])
    recipients = as_told(load_register(settings.recipients_file).content, disclosures_of(
        vault, request.controller_id, subject_ids=subjects,
        emails=IdentitySet.from_json(known).values("email") if known else []))
    summary = {"request": request_id, "controller": request.controller_id, "right": request.kind,
               "received_on": request.received_on.isoformat(), "due_on": request.due_on.isoformat(),
               "confirmed_on": on.isoformat(), "status": "refused" if request.status == "refused"
               else "awaiting the controller's decision" if awaiting else "completed",
               "refusal_reason": request.refusal_reason, "particulars": request.particulars, "stores": stores_done,
               "recipients": recipients, "nothing_held": NOTHING_HELD}
    write_atomically(path.with_suffix(".json"), json_bytes(summary), mode=0o640)
    write_atomically(path, html_bytes("rights_confirmation.html.j2", controller_name=controller_name, **summary),
                     mode=0o640)
    if request.is_open and not awaiting:
        complete_request(vault, request_id, package=str(path.relative_to(settings.outbox_dir)), actor=actor, at=at)
    if not awaiting:
        work.clear()
    return {"request_id": request_id, "confirmation": str(path), "status": summary["status"]}


def fulfil(vault: Vault, stores_of, request_id: str, settings: AccessSettings, *, on: date, actor: str,
           at: datetime) -> dict:
    """Every step for one request, in one process."""
    stores = stores_of(get_request(vault, request_id).controller_id)
    for step in (lambda: plan(vault, stores_of, [request_id], settings, actor=actor, at=at),
                 lambda: plan_logs(vault, stores_of, [request_id], settings, at=at)):
        for pair in step():
            act(vault, stores, request_id, pair["store"], settings, actor=actor, at=at)
    return confirm(vault, stores, request_id, settings, on=on, actor=actor, at=at)

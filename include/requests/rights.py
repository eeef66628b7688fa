"""Rectification, erasure, restriction and objection requests (Art. 16-18, 21) in the request
pipeline (include/requests/pipeline.py):

- restricting, lifting a restriction and objecting are done in the vault when the request is
  planned: the vault's part is all there is;
- erasure and rectification act on the vault and each SQL store, each store's part planned first
  and kept, so a retry applies the same plan; a rectification of restricted data is refused before
  any store changes; an erasure then acts on the server logs with every IP address found;
- the confirmation (what was done in each store, what was kept, why and through which day, named as
  the access package names it) is delivered to the controller's outbox with a version addressed to
  the person, and the request completed. An objection on other grounds than direct
  marketing stays open for the controller's decision, the person's data restricted meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from include.common.errors import InvalidInput, StoreUnavailable
from include.common.files import write_atomically
from include.common.reports import html_bytes, json_bytes, natural_key
from include.duties.disclosures import as_told, disclosures_of, load_register
from include.requests.gather import IDENTITY_STORES
from include.requests.kinds import RIGHTS
from include.requests.package import COMPLAINT, LOG_LABEL, VAULT_LABELS
from include.requests.pipeline import Case, Procedure, Workspace
from include.requests.register import (
    Request,
    complete_request,
    record_possible_matches,
    register_request,
    request_corrections,
    request_identities,
    with_case_reference,
)
from include.stores.base import Acting
from include.stores.identities import IdentitySet
from include.stores.vault import VAULT_STORE, VaultStore
from include.vault.restriction import lift_restrictions, require_unrestricted, restrict
from include.vault.schema import controller, controller_detail, record
from include.vault.store import Vault
from include.vault.suppression import suppress

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


class _Progress:
    """A long rewrite's progress, kept in the request's work files."""

    def __init__(self, work: Workspace, at: datetime) -> None:
        self.work, self.at = work, at

    def load(self, name: str) -> dict | None:
        return self.work.load(name, self.at)

    def save(self, name: str, data: dict) -> None:
        self.work.save(name, data, self.at)


def confirmation_path(outbox: Path, request: Request) -> Path:
    return Path(outbox) / request.controller_id / f"{request.kind}-{request.id}.html"


def person_confirmation_path(confirmation: Path) -> Path:
    """The confirmation addressed to the person, beside the controller's: the controller sends it on."""
    return confirmation.with_name(f"{confirmation.stem}-for-the-person.html")


class Rights(Procedure):
    kinds = RIGHTS

    def begin(self, case: Case, identities: IdentitySet) -> list[str]:
        request, vault = case.request, case.vault
        if request.kind == "erase":
            return case.stores.ids(IDENTITY_STORES)
        subjects = VaultStore(vault, request.controller_id).subjects(identities)
        if request.kind == "rectify":
            require_unrestricted(vault, controller_id=request.controller_id, subject_ids=subjects,
                                 operation="rectification", actor=case.actor, at=case.at)
            return case.stores.ids(IDENTITY_STORES)
        outcome = _in_vault(vault, request, subjects, identities, actor=case.actor, at=case.at)
        case.work.save(f"store-{VAULT_STORE}", outcome, case.at)
        return []

    def on_store(self, case: Case, store: str) -> dict:
        """Erase or rectify in one store; the counts of records changed and kept."""
        outcome = _act(case, store)
        return {"changed": sum(done["records"] for done in outcome["done"]), "kept": len(outcome.get("kept", []))}

    def log_identities(self, case: Case) -> IdentitySet | None:
        """For an erasure, every identity the stores' plans found, once every store has been acted on."""
        if case.request.kind != "erase":
            return None
        every = case.identities()
        for store in case.stores.ids(IDENTITY_STORES):
            if (store_plan := case.work.load(f"plan-{store}", case.at)) is None:
                raise StoreUnavailable(f"request {case.request.id}: store {store} has not been acted on; "
                                       "the logs wait for every store")
            every.merge(IdentitySet.from_json(store_plan["identities"]))
        return every

    def finish(self, case: Case, on: date) -> dict:
        return _confirm(case, on)


def _act(case: Case, store: str) -> dict:
    """Erase or rectify in one store for one request; returns what was done there."""
    vault, request, work, actor, at = case.vault, case.request, case.work, case.actor, case.at
    request_id, controller_id = request.id, request.controller_id
    if not request.is_open:
        return work.load(f"store-{store}", at) or {"done": [], "kept": []}
    identities = case.identities()
    kind, target = case.stores.kind(store), case.stores.store(store)
    acting = Acting(controller_id, request_id, actor, at, book=vault.instruction_book(),
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


# What the vault's part of a confirmation names besides its records' categories.
VAULT_PARTS = {"records": "Your records", "data keys": "The keys that unlock your records",
               "data subjects": "Your records", "restrictions": "The restriction of your records",
               "suppression list": "The list of people never to be sent marketing"}


def _labels(case: Case) -> dict[tuple[str, str], str]:
    """(store, table) -> the plain label the access package uses for it; (store, "") for a log store,
    whose tables are its files."""
    labels = {(VAULT_STORE, part): label for part, label in {**VAULT_LABELS, **VAULT_PARTS}.items()}
    for loaded in case.stores.maps:
        data_map = loaded.content
        for name, table in data_map.tables.items():
            labels[(data_map.store, name)] = table.label or name.replace("_", " ").capitalize()
        if data_map.logs is not None:
            labels[(data_map.store, "")] = data_map.logs.label or LOG_LABEL
    return labels


def _label(labels: dict[tuple[str, str], str], store: str, table: str) -> str:
    return labels.get((store, table)) or labels.get((store, ""), table)


def _kept_rows(case: Case, store: str, kept: list[dict], labels: dict[tuple[str, str], str]) -> list[dict]:
    """Kept records as people read them, in natural order: the table's label, the record's date where
    the vault has it, and the last day it is kept (its retention end is the first day it may go)."""
    dated: dict[str, date] = {}
    if store == VAULT_STORE and kept:
        with case.vault.engine.connect() as conn:
            dated = {row.id: row.relates_to or row.created_at.date() for row in conn.execute(
                select(record.c.id, record.c.relates_to, record.c.created_at)
                .where(record.c.id.in_([k["key"] for k in kept])))}
    return [{**k, "label": _label(labels, store, k["table"]),
             "dated": dated[k["key"]].isoformat() if k["key"] in dated else None,
             "kept_through": (datetime.fromisoformat(k["until"]) - timedelta(days=1)).date().isoformat()
             if k["until"] else None}
            for k in sorted(kept, key=lambda k: (k["table"], natural_key(k["key"])))]


def _confirm(case: Case, on: date) -> dict:
    """Write the confirmations once every store has been acted on, one for the controller and one
    addressed to the person; complete the request."""
    vault, settings, work, actor, at = case.vault, case.settings, case.work, case.actor, case.at
    request = with_case_reference(vault, case.request, actor=actor, at=at)
    request_id, stores = request.id, case.stores
    path = confirmation_path(settings.outbox_dir, request)
    done_already = {"request_id": request_id, "case_reference": request.case_reference, "confirmation": str(path)}
    if not request.is_open and path.exists():
        return {**done_already, "status": request.status}
    needed = (stores.ids() if request.kind == "erase" else stores.ids(IDENTITY_STORES)
              if request.kind == "rectify" else [VAULT_STORE])
    results = {store: work.load(f"store-{store}", at) for store in needed}
    if request.is_open and (missing := [store for store, result in results.items() if result is None]):
        raise StoreUnavailable(f"request {request_id}: no outcome from store(s) {', '.join(missing)}; "
                               "nothing is confirmed from a partial run")
    awaiting = request.kind == "object" and request.particulars.get("ground") != "direct_marketing"
    with vault.engine.connect() as conn:
        named = conn.execute(select(controller.c.name, controller_detail.c.contact).outerjoin(
            controller_detail, controller_detail.c.controller_id == controller.c.id).where(
            controller.c.id == request.controller_id)).one()
    labels = _labels(case)
    stores_done = [{"store": store,
                    "done": [{**d, "label": _label(labels, store, d["table"])}
                             for d in (result or {}).get("done", [])],
                    "kept": _kept_rows(case, store, (result or {}).get("kept", []), labels),
                    "held": len((result or {}).get("held", []))} for store, result in results.items()]
    known = work.load("identities", at)
    erased = (work.load(f"plan-{VAULT_STORE}", at) or {}).get("subjects", [])  # found before their erasure
    subjects = [s["subject_id"] for s in erased] + ([request.subject_id] if request.subject_id else [])
    recipients = as_told(load_register(settings.recipients_file).content, disclosures_of(
        vault, request.controller_id, subject_ids=subjects,
        emails=IdentitySet.from_json(known).values("email") if known else []))
    summary = {"request": request_id, "case": request.case_reference, "controller": request.controller_id,
               "right": request.kind, "received_on": request.received_on.isoformat(),
               "due_on": request.due_on.isoformat(), "confirmed_on": on.isoformat(),
               "status": "refused" if request.status == "refused"
               else "awaiting the controller's decision" if awaiting else "completed",
               "refusal_reason": request.refusal_reason, "particulars": request.particulars, "stores": stores_done,
               "recipients": recipients, "nothing_held": NOTHING_HELD}
    write_atomically(path.with_suffix(".json"), json_bytes(summary), mode=0o640)
    write_atomically(path, html_bytes("rights_confirmation.html.j2", controller_name=named.name, **summary),
                     mode=0o640)
    write_atomically(person_confirmation_path(path), html_bytes(
        "rights_confirmation_person.html.j2", controller_name=named.name, contact=named.contact,
        complaint=COMPLAINT, **summary), mode=0o640)
    if request.is_open and not awaiting:
        complete_request(vault, request_id, package=str(path.relative_to(settings.outbox_dir)), actor=actor, at=at)
    if not awaiting:
        work.clear()
    return {**done_already, "status": summary["status"]}

"""Fulfilling access requests in steps, so that a workflow can search each store in its own task:

1. plan: for each request, the identities it was made with and those the vault links to them; the
   request is marked in progress; the (request, store) pairs of the vault and the SQL stores.
2. search one store for one request.
3. plan_logs: the identities those searches found (IP addresses above all); the (request, store)
   pairs of the server logs; then step 2 for them.
4. package: when every store of the request has been searched, build the package, seal it, deliver
   it to the controller's outbox, and complete the request. A request is never completed from a
   partial search: a store without a result stops it here.

Between steps, results are kept in the work directory encrypted under the request's own key, never
in plain text. `fulfil` runs the steps in one go.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from include.disclosures import as_told, disclosures_of, load_register
from include.errors import StoreUnavailable, UnknownRecord
from include.files import write_atomically
from include.paths import DEFAULT_RECIPIENTS_FILE
from include.policies.instructions import InstructionBook
from include.requests.gather import IDENTITY_STORES, LOG_STORES, Stores, first_identities, known_identities
from include.requests.package import build_package, deliver, seal
from include.requests.redaction import NAME_FIELDS, Redactor, name_words
from include.requests.register import (
    complete_request,
    get_request,
    record_possible_matches,
    request_cipher,
    request_identities,
    start_request,
)
from include.stores.base import StoreResult
from include.stores.identities import SEARCHED_KINDS, IdentitySet, Standing
from include.vault.schema import controller
from include.vault.store import Vault


@dataclass(frozen=True)
class Workspace:
    """A request's encrypted scratch files."""

    vault: Vault
    root: Path
    request_id: str

    @property
    def directory(self) -> Path:
        return Path(self.root) / self.request_id

    def save(self, name: str, data: dict, at: datetime) -> None:
        blob = request_cipher(self.vault, self.request_id, at).encrypt(self.request_id, name, json.dumps(data))
        write_atomically(self.directory / f"{name}.bin", blob, mode=0o600)

    def load(self, name: str, at: datetime) -> dict | None:
        path = self.directory / f"{name}.bin"
        if not path.exists():
            return None
        cipher = request_cipher(self.vault, self.request_id, at)
        return json.loads(cipher.decrypt(self.request_id, name, path.read_bytes()))

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class AccessSettings:
    work_dir: Path
    outbox_dir: Path
    recipients_file: Path = DEFAULT_RECIPIENTS_FILE


def plan(vault: Vault, stores_of, request_ids: list[str], settings: AccessSettings, *, actor: str,
         at: datetime) -> list[dict]:
    """(request, store) pairs to search. stores_of(controller_id) -> Stores."""
    pairs = []
    for request_id in request_ids:
        request = get_request(vault, request_id)
        if not request.is_open:
            continue  # completed by an earlier run: a re-run changes nothing
        stores = stores_of(request.controller_id)
        given = IdentitySet.given(request_identities(vault, request_id))
        if request.subject_id:  # registered for a known subject: their identities are in the vault
            for view in vault.read_records(vault.subject_record_ids(request.subject_id)):
                for kind in SEARCHED_KINDS:
                    if kind in view.fields:
                        given.add(kind, view.fields[kind], f"the request's data subject (vault {view.category})",
                                  Standing.given)
        identities = first_identities(stores, given)
        Workspace(vault, settings.work_dir, request_id).save("identities", identities.to_json(), at)
        if request.status != "in_progress":
            start_request(vault, request_id, subject_id=request.subject_id, actor=actor, at=at)
        pairs += [{"request_id": request_id, "store": store} for store in stores.ids(IDENTITY_STORES)]
    return pairs


def plan_logs(vault: Vault, stores_of, request_ids: list[str], settings: AccessSettings, *,
              at: datetime) -> list[dict]:
    """(request, store) pairs of the server logs, once the identity stores have been searched."""
    pairs = []
    for request_id in request_ids:
        request = get_request(vault, request_id)
        if not request.is_open:
            continue
        stores = stores_of(request.controller_id)
        work = Workspace(vault, settings.work_dir, request_id)
        results = _results(work, stores.ids(IDENTITY_STORES), request_id, at)
        every = known_identities(IdentitySet.from_json(work.load("identities", at)), results)
        work.save("identities", every.to_json(), at)
        pairs += [{"request_id": request_id, "store": store} for store in stores.ids(LOG_STORES)]
    return pairs


def _results(work: Workspace, store_ids: list[str], request_id: str, at: datetime) -> list[StoreResult]:
    results, missing = [], []
    for store in store_ids:
        saved = work.load(f"store-{store}", at)
        if saved is None:
            missing.append(store)
        else:
            results.append(StoreResult.from_json(saved))
    if missing:
        raise StoreUnavailable(f"request {request_id}: no search result from store(s) {', '.join(missing)}; "
                               "nothing is made from a partial search")
    return results


def search(vault: Vault, stores: Stores, request_id: str, store: str, settings: AccessSettings, *,
           at: datetime) -> int:
    """Search one store for one request; returns how many records it holds."""
    work = Workspace(vault, settings.work_dir, request_id)
    known = work.load("identities", at)
    if known is None:
        raise UnknownRecord(f"request {request_id} has not been planned (no identities in the work directory)")
    result = stores.store(store).search(IdentitySet.from_json(known))
    work.save(f"store-{store}", result.to_json(), at)
    record_possible_matches(vault, request_id, store, result.held, at=at)
    return len(result.records)


def package(vault: Vault, stores: Stores, request_id: str, settings: AccessSettings, *, on: date, actor: str,
            at: datetime) -> dict:
    """Build, seal and deliver the package once every store has been searched; complete the request."""
    request = get_request(vault, request_id)
    if not request.is_open:
        return {"request_id": request_id, "package": request.package, "records": None}
    work = Workspace(vault, settings.work_dir, request_id)
    results = _results(work, stores.ids(), request_id, at)
    identities = IdentitySet.from_json(work.load("identities", at))
    with vault.engine.connect() as conn:
        controller_name = conn.execute(controller.select().where(controller.c.id == request.controller_id)).one().name
    own = name_words([controller_name, *(found.data.get(field) for result in results
                                         for found in result.records for field in NAME_FIELDS)])
    disclosed = as_told(load_register(settings.recipients_file).content, disclosures_of(
        vault, request.controller_id, subject_ids=[request.subject_id] if request.subject_id else [],
        emails=identities.values("email")))
    files = build_package(request=request, controller_name=controller_name, results=results, maps=stores.maps,
                          book=InstructionBook.load(vault), redactor=Redactor(identities, own), on=on,
                          disclosed=disclosed)
    with vault.keystore.wrapping() as keyring:  # a key rotation waits until the package is written
        sealed, _secret = seal(files, keyring=keyring, request_id=request_id)
        path = deliver(settings.outbox_dir, request.controller_id, request_id, sealed)
    records = sum(len(result.records) for result in results)
    complete_request(vault, request_id, package=str(path.relative_to(settings.outbox_dir)), actor=actor, at=at)
    work.clear()
    return {"request_id": request_id, "package": str(path), "records": records}


def fulfil(vault: Vault, stores_of, request_id: str, settings: AccessSettings, *, on: date, actor: str,
           at: datetime) -> dict:
    """Every step for one request, in one process."""
    stores = stores_of(get_request(vault, request_id).controller_id)
    for step in (lambda: plan(vault, stores_of, [request_id], settings, actor=actor, at=at),
                 lambda: plan_logs(vault, stores_of, [request_id], settings, at=at)):
        for pair in step():
            search(vault, stores, request_id, pair["store"], settings, at=at)
    return package(vault, stores, request_id, settings, on=on, actor=actor, at=at)

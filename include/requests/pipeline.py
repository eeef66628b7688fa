"""One pipeline for every kind of request, in steps a workflow runs as tasks:

1. plan: the identities the request gives (and, for a request registered for a known subject, those
   the vault holds for them), with those the vault links to them, kept in the request's work
   directory from the first run on, so a retry works with what was found before anything changed;
   the request is marked in progress; the kind of request then names the stores to work on (the
   vault and the SQL stores), or does all it needs in the vault there and names none.
2. on_store: one store for one request: search it, or plan and apply a change to it.
3. plan_logs: the identities the stores found (IP addresses above all), for the server logs.
4. finish: once every store has answered, the package or the confirmation, delivered to the
   controller's outbox; the request is completed. Nothing is finished from a partial run.

What each kind does at each step is a Procedure (include/requests/access.py, rights.py). Between
steps, results are kept in the work directory encrypted under the request's own key, never in plain
text. `fulfil` runs every step in one process.
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

from include.common.errors import InvalidInput, Restricted, UnknownRecord
from include.common.files import write_atomically
from include.common.paths import DEFAULT_RECIPIENTS_FILE
from include.common.settings import WorkflowSettings
from include.requests.gather import LOG_STORES, Stores, first_identities
from include.requests.register import (
    WORKABLE_STATUSES,
    Request,
    get_request,
    refuse_request,
    request_cipher,
    request_identities,
    start_request,
)
from include.stores.identities import SEARCHED_KINDS, IdentitySet, Standing
from include.vault.store import Vault

StoresOf = Callable[[str], Stores]  # controller id -> its stores


@dataclass(frozen=True)
class RequestSettings:
    work_dir: Path
    outbox_dir: Path
    recipients_file: Path = DEFAULT_RECIPIENTS_FILE

    @classmethod
    def of(cls, workflow: WorkflowSettings) -> RequestSettings:
        """The workflows' settings as the request steps need them."""
        return cls(work_dir=workflow.work_dir, outbox_dir=workflow.outbox_dir, recipients_file=workflow.recipients_file)


def held_dir(settings: RequestSettings) -> Path:
    """Where answers awaiting a person's review are kept, out of the outbox, by controller."""
    return settings.work_dir / "held"


@dataclass(frozen=True)
class Workspace:
    """A request's encrypted scratch files."""

    vault: Vault
    root: Path
    request_id: str

    @property
    def directory(self) -> Path:
        return Path(self.root) / self.request_id

    def save(self, name: str, data: Any, at: datetime) -> None:  # any JSON value
        blob = request_cipher(self.vault, self.request_id, at).encrypt(self.request_id, name, json.dumps(data))
        write_atomically(self.directory / f"{name}.bin", blob, mode=0o600)

    def load(self, name: str, at: datetime) -> Any:  # the JSON value saved, or None
        path = self.directory / f"{name}.bin"
        if not path.exists():
            return None
        cipher = request_cipher(self.vault, self.request_id, at)
        return json.loads(cipher.decrypt(self.request_id, name, path.read_bytes()))

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class Case:
    """One request being worked on, with what every step needs."""

    vault: Vault
    stores: Stores
    request: Request
    work: Workspace
    settings: RequestSettings
    actor: str
    at: datetime

    @classmethod
    def open(cls, vault: Vault, stores: Stores, request_id: str, settings: RequestSettings, *, actor: str,
             at: datetime) -> Case:
        return cls(vault, stores, get_request(vault, request_id), Workspace(vault, settings.work_dir, request_id),
                   settings, actor, at)

    def identities(self) -> IdentitySet:
        """The identities planned for the request (UnknownRecord before the plan step)."""
        known = self.work.load("identities", self.at)
        if known is None:
            raise UnknownRecord(f"request {self.request.id} has not been planned (no identities in the work "
                                "directory)")
        return IdentitySet.from_json(known)

    def pairs(self, store_ids: Sequence[str]) -> list[dict]:
        return [{"request_id": self.request.id, "store": store} for store in store_ids]


class Procedure(ABC):
    """What one kind of request does at each step of the pipeline."""

    kinds: ClassVar[tuple[str, ...]]  # the kinds of request it answers

    @abstractmethod
    def begin(self, case: Case, identities: IdentitySet) -> list[str]:
        """The stores to work on first, once the identities are known (none when the vault's part is
        all there is, done here). Restricted refuses the request."""

    @abstractmethod
    def on_store(self, case: Case, store: str) -> dict:
        """Work on one store; returns counts for the workflow (never values)."""

    @abstractmethod
    def log_identities(self, case: Case) -> IdentitySet | None:
        """Every identity to work on the server logs with, or None when the kind leaves them alone."""

    @abstractmethod
    def finish(self, case: Case, on: date) -> dict:
        """The package or confirmation, once every store has answered; completes the request."""


def procedure_for(request: Request) -> Procedure:
    # Imported here: the kinds' modules build on this one.
    from include.requests.access import Access
    from include.requests.rights import Rights

    for procedure in (Access, Rights):
        if request.kind in procedure.kinds:
            return procedure()
    raise InvalidInput(f"request {request.id}: no procedure for requests of kind '{request.kind}'")


def _given(case: Case) -> IdentitySet:
    given = IdentitySet.given(request_identities(case.vault, case.request.id))
    if case.request.subject_id:  # registered for a known subject: their identities are in the vault
        for view in case.vault.read_records(case.vault.subject_record_ids(case.request.subject_id)):
            for kind in SEARCHED_KINDS:
                if kind in view.fields:
                    given.add(kind, view.fields[kind], f"the request's data subject (vault {view.category})",
                              Standing.given)
    return given


def plan(vault: Vault, stores_of: StoresOf, request_ids: Sequence[str], settings: RequestSettings, *, actor: str,
         at: datetime) -> list[dict]:
    """(request, store) pairs to work on: the vault and the SQL stores."""
    pairs = []
    for request_id in request_ids:
        request = get_request(vault, request_id)
        if request.status not in WORKABLE_STATUSES or _awaits_confirmation(vault, request):
            # Finished by an earlier run (a re-run changes nothing), or waiting for a person: the
            # requester's identity, a paused clock, a package's review, an erasure's confirmation.
            continue
        procedure = procedure_for(request)
        case = Case.open(vault, stores_of(request.controller_id), request_id, settings, actor=actor, at=at)
        saved = case.work.load("identities", at)
        identities = IdentitySet.from_json(saved) if saved is not None else first_identities(case.stores, _given(case))
        if saved is None:
            case.work.save("identities", identities.to_json(), at)
        if request.status == "received":
            start_request(vault, request_id, subject_id=request.subject_id, actor=actor, at=at)
        try:
            pairs += case.pairs(procedure.begin(case, identities))
        except Restricted as refused:
            refuse_request(vault, request_id, reason=str(refused), actor=actor, at=at)
    return pairs


def _awaits_confirmation(vault: Vault, request: Request) -> bool:
    """An erasure not yet confirmed by a person, for a controller that asks for one (register.confirm_erasure)."""
    from include.requests.caseload import review_gates  # the caseload reads the register this module builds on

    return (request.kind == "erase" and request.status == "received"
            and review_gates(vault, request.controller_id).erasure)


def plan_logs(vault: Vault, stores_of: StoresOf, request_ids: Sequence[str], settings: RequestSettings, *,
              actor: str, at: datetime) -> list[dict]:
    """(request, store) pairs of the server logs, once the other stores have answered."""
    pairs = []
    for request_id in request_ids:
        request = get_request(vault, request_id)
        if not request.is_open:
            continue
        case = Case.open(vault, stores_of(request.controller_id), request_id, settings, actor=actor, at=at)
        every = procedure_for(request).log_identities(case)
        if every is None:
            continue
        case.work.save("identities", every.to_json(), at)
        pairs += case.pairs(case.stores.ids(LOG_STORES))
    return pairs


def on_store(vault: Vault, stores: Stores, request_id: str, store: str, settings: RequestSettings, *, actor: str,
             at: datetime) -> dict:
    """Work on one store for one request; returns the request, the store and counts."""
    case = Case.open(vault, stores, request_id, settings, actor=actor, at=at)
    return {"request_id": request_id, "store": store, **procedure_for(case.request).on_store(case, store)}


def finish(vault: Vault, stores: Stores, request_id: str, settings: RequestSettings, *, on: date, actor: str,
           at: datetime) -> dict:
    """Finish the request once every store has answered."""
    case = Case.open(vault, stores, request_id, settings, actor=actor, at=at)
    return procedure_for(case.request).finish(case, on)


def work_on_stores(vault: Vault, stores_of: StoresOf, request_id: str, settings: RequestSettings, *, actor: str,
                   at: datetime) -> Stores:
    """Every step but the last for one request, in one process; returns its controller's stores."""
    stores = stores_of(get_request(vault, request_id).controller_id)
    for step in (plan, plan_logs):
        for pair in step(vault, stores_of, [request_id], settings, actor=actor, at=at):
            on_store(vault, stores, request_id, pair["store"], settings, actor=actor, at=at)
    return stores


def fulfil(vault: Vault, stores_of: StoresOf, request_id: str, settings: RequestSettings, *, on: date, actor: str,
           at: datetime) -> dict:
    """Every step for one request, in one process."""
    stores = work_on_stores(vault, stores_of, request_id, settings, actor=actor, at=at)
    return finish(vault, stores, request_id, settings, on=on, actor=actor, at=at)

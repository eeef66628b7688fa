"""Access requests (Art. 15) in the request pipeline (include/requests/pipeline.py): every store is
searched with the request's identities, then the server logs with every identity those searches
found; the package, built when every store has answered, is sealed and delivered to the controller's
outbox, and the request completed. A request is never completed from a partial search.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from include.common.errors import StoreUnavailable
from include.crypto.sealing import seal
from include.duties.disclosures import as_told, disclosures_of, load_register
from include.requests.gather import IDENTITY_STORES, known_identities
from include.requests.package import build_package, deliver
from include.requests.pipeline import Case, Procedure
from include.requests.register import complete_request, record_possible_matches
from include.stores.base import StoreResult
from include.stores.identities import IdentitySet
from include.stores.redaction import NAME_FIELDS, Redactor, name_words
from include.vault.schema import controller


class Access(Procedure):
    kinds = ("access",)

    def begin(self, case: Case, identities: IdentitySet) -> list[str]:
        return case.stores.ids(IDENTITY_STORES)

    def on_store(self, case: Case, store: str) -> dict:
        """Search one store; the count of records it holds."""
        result = case.stores.store(store).search(case.identities())
        case.work.save(f"store-{store}", result.to_json(), case.at)
        record_possible_matches(case.vault, case.request.id, store, result.held, at=case.at)
        return {"records": len(result.records)}

    def log_identities(self, case: Case) -> IdentitySet:
        return known_identities(case.identities(), searched(case, case.stores.ids(IDENTITY_STORES)))

    def finish(self, case: Case, on: date) -> dict:
        """Build, seal and deliver the package; complete the request."""
        vault, request, settings = case.vault, case.request, case.settings
        if not request.is_open:
            return {"request_id": request.id, "package": request.package, "records": None}
        results = searched(case, case.stores.ids())
        identities = case.identities()
        with vault.engine.connect() as conn:
            controller_name = conn.execute(controller.select().where(controller.c.id == request.controller_id)
                                           ).one().name
        own = name_words([controller_name, *(found.data.get(field) for result in results
                                             for found in result.records for field in NAME_FIELDS)])
        disclosed = as_told(load_register(settings.recipients_file).content, disclosures_of(
            vault, request.controller_id, subject_ids=[request.subject_id] if request.subject_id else [],
            emails=identities.values("email")))
        files = build_package(request=request, controller_name=controller_name, results=results,
                              maps=case.stores.maps, book=vault.instruction_book(),
                              redactor=Redactor(identities, own), on=on, disclosed=disclosed)
        with vault.keystore.wrapping() as keyring:  # a key rotation waits until the package is written
            sealed, _secret = seal(files, keyring=keyring, reference=request.id)
            path = deliver(settings.outbox_dir, request.controller_id, request.id, sealed)
        records = sum(len(result.records) for result in results)
        complete_request(vault, request.id, package=str(path.relative_to(settings.outbox_dir)), actor=case.actor,
                         at=case.at)
        case.work.clear()
        return {"request_id": request.id, "package": str(path), "records": records}


def searched(case: Case, store_ids: Sequence[str]) -> list[StoreResult]:
    """The stores' findings, each kept by its search (StoreUnavailable names any not searched)."""
    results, missing = [], []
    for store in store_ids:
        saved = case.work.load(f"store-{store}", case.at)
        if saved is None:
            missing.append(store)
        else:
            results.append(StoreResult.from_json(saved))
    if missing:
        raise StoreUnavailable(f"request {case.request.id}: no search result from store(s) {', '.join(missing)}; "
                               "nothing is made from a partial search")
    return results

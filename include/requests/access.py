"""Access requests (Art. 15) in the request pipeline (include/requests/pipeline.py): every store is
searched with the request's identities, then the server logs with every identity those searches
found; the package, built when every store has answered (with the request's case reference, the
controller's contact, and the register's recipients of the person's categories), is sealed and
delivered to the controller's outbox, and the request completed. A request is never completed from
a partial search.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select

from include.common.errors import StoreUnavailable
from include.crypto.sealing import seal
from include.duties.disclosures import as_told, disclosures_of, load_register
from include.requests.caseload import review_gates
from include.requests.gather import IDENTITY_STORES, known_identities
from include.requests.package import build_package, deliver
from include.requests.pipeline import Case, Procedure, held_dir
from include.requests.register import complete_request, hold_for_review, record_possible_matches, with_case_reference
from include.stores.base import StoreResult
from include.stores.identities import IdentitySet
from include.stores.redaction import NAME_FIELDS, Redactor, name_words
from include.vault.schema import controller, controller_detail


class Access(Procedure):
    kinds = ("access",)

    def begin(self, case: Case, identities: IdentitySet) -> list[str]:
        return case.stores.ids(IDENTITY_STORES)

    def on_store(self, case: Case, store: str) -> dict:
        """Search one store; the count of records it holds."""
        result = case.stores.store(store).search(case.identities())
        case.work.save(f"store-{store}", result.to_json(), case.at)
        held = record_possible_matches(case.vault, case.request.id, store, result.held, at=case.at)
        case.vault.record_event("access.store", actor=case.actor, at=case.at, controller_id=case.request.controller_id,
                                details={"request": case.request.id, "store": store, "records": len(result.records),
                                         "held_back": held})
        return {"records": len(result.records)}

    def log_identities(self, case: Case) -> IdentitySet:
        return known_identities(case.identities(), searched(case, case.stores.ids(IDENTITY_STORES)))

    def finish(self, case: Case, on: date) -> dict:
        """Build, seal and deliver the package; complete the request."""
        vault, settings = case.vault, case.settings
        request = with_case_reference(vault, case.request, actor=case.actor, at=case.at)
        if not request.is_open or request.status == "awaiting_review":  # made by an earlier run
            return {"request_id": request.id, "case_reference": request.case_reference, "package": request.package,
                    "records": None, "held_for_review": request.status == "awaiting_review"}
        results = searched(case, case.stores.ids())
        identities = case.identities()
        with vault.engine.connect() as conn:
            named = conn.execute(select(controller.c.name, controller_detail.c.contact).outerjoin(
                controller_detail, controller_detail.c.controller_id == controller.c.id).where(
                controller.c.id == request.controller_id)).one()
        own = name_words([named.name, *(found.data.get(field) for result in results
                                        for found in result.records for field in NAME_FIELDS)])
        register = load_register(settings.recipients_file).content
        disclosed = as_told(register, disclosures_of(
            vault, request.controller_id, subject_ids=[request.subject_id] if request.subject_id else [],
            emails=identities.values("email")))
        files = build_package(request=request, controller_name=named.name, results=results,
                              maps=case.stores.maps, book=vault.instruction_book(),
                              redactor=Redactor(identities, own), on=on, disclosed=disclosed, contact=named.contact,
                              register=register)
        # A controller that reviews packages first: held out of the outbox until a person releases it.
        reviewed = review_gates(vault, request.controller_id).package
        place = held_dir(settings) if reviewed else settings.outbox_dir
        with vault.keystore.wrapping() as keyring:  # a key rotation waits until the package is written
            sealed, _secret = seal(files, keyring=keyring, reference=request.id)
            path = deliver(place, request.controller_id, request.id, sealed)
        records = sum(len(result.records) for result in results)
        if reviewed:
            hold_for_review(vault, request.id, package=str(path.relative_to(place)), actor=case.actor, at=case.at)
        else:
            complete_request(vault, request.id, package=str(path.relative_to(place)), actor=case.actor, at=case.at)
        case.work.clear()
        return {"request_id": request.id, "case_reference": request.case_reference, "package": str(path),
                "records": records, "held_for_review": reviewed}


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

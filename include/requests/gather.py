"""Gathering one person's data across every store of a controller, for an access request.

In two stages. First the vault, then each SQL store, is searched with the identities the request
gives and those the vault links to them; the records found yield the person's further identities
(phone numbers, customer numbers, the IP addresses their account and orders used). Then the server
logs are searched with every IP address found. Each record says which identity or reference led
to it.

A store that cannot be searched raises StoreUnavailable: the gathering is retried, never cut short.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from include.datamap.connectors import IdentitySet, LogConnector, SqlConnector, StoreResult, VaultConnector
from include.datamap.model import DataMap
from include.errors import InvalidInput
from include.vault.store import Vault
from include.yamlfiles import LoadedFile

VAULT_STORE = "vault"


@dataclass(frozen=True)
class Stores:
    """What a controller's stores are and how to reach them."""

    vault: Vault
    controller_id: str
    maps: Sequence[LoadedFile[DataMap]]
    engine_for: Callable[[str], Engine]  # Airflow connection id -> engine
    log_root: Path

    def ids(self, kinds: Sequence[str] = ("vault", "sql", "server_logs")) -> list[str]:
        """The vault, the SQL stores, then the logs (which need the IP addresses found first)."""
        mine = sorted((m for m in self.maps if m.content.controller == self.controller_id),
                      key=lambda m: (m.content.kind != "sql", m.content.store))
        return [store for store in [VAULT_STORE, *(m.content.store for m in mine)] if self.kind(store) in kinds]

    def connector(self, store: str) -> VaultConnector | SqlConnector | LogConnector:
        if store == VAULT_STORE:
            return VaultConnector(self.vault, self.controller_id)
        loaded = next((m for m in self.maps if m.content.store == store
                       and m.content.controller == self.controller_id), None)
        if loaded is None:
            raise InvalidInput(f"store '{store}' is not one of controller '{self.controller_id}'s stores")
        if loaded.content.kind == "sql":
            return SqlConnector(loaded, self.engine_for(loaded.content.connection))
        return LogConnector(loaded, self.log_root)

    def kind(self, store: str) -> str:
        return "vault" if store == VAULT_STORE else next(
            m.content.kind for m in self.maps if m.content.store == store)


def given_identities(pairs: Sequence[tuple[str, str]]) -> IdentitySet:
    identities = IdentitySet()
    for kind, value in pairs:
        identities.add(kind, value, "given in the request")
    return identities


IDENTITY_STORES = ("vault", "sql")  # searched first: they hold the identities that lead to log lines
LOG_STORES = ("server_logs",)


def first_identities(stores: Stores, given: IdentitySet) -> IdentitySet:
    """The given identities and those the vault links to them (blind-index lookups only)."""
    return known_identities(given, [stores.connector(VAULT_STORE).gather(given)])


def known_identities(given: IdentitySet, results: Sequence[StoreResult]) -> IdentitySet:
    """Every identity the given ones led to in the results."""
    known = IdentitySet()
    known.merge(given)
    for result in results:
        known.merge(result.identities)
    return known


def gather_subject(stores: Stores, given: IdentitySet) -> list[StoreResult]:
    """Every store's records of the person, in the order of Stores.ids."""
    first = first_identities(stores, given)
    results = [stores.connector(store).gather(first) for store in stores.ids(IDENTITY_STORES)]
    every = known_identities(first, results)
    return results + [stores.connector(store).gather(every) for store in stores.ids(LOG_STORES)]

"""A controller's stores, and what a request searches them with.

In two stages. First the vault, then each SQL store, is searched with the identities the request
gives; the vault's findings are evidence each SQL store checks before using. Then the server logs are
searched with the IP addresses the stores found on the person's own rows and on no one else's.

A store that cannot be searched raises StoreUnavailable: the gathering is retried, never cut short.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from include.common.errors import InvalidInput
from include.common.yamlfiles import LoadedFile
from include.datamap.model import DataMap
from include.stores.base import Store, StoreResult
from include.stores.identities import IdentitySet
from include.stores.logs import LogStore
from include.stores.sql import SqlStore
from include.stores.vault import VAULT_STORE, VaultStore
from include.vault.store import Vault

IDENTITY_STORES = ("vault", "sql")  # searched first: they hold the identities that lead to log lines
LOG_STORES = ("server_logs",)


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

    def store(self, store: str) -> Store:
        if store == VAULT_STORE:
            return VaultStore(self.vault, self.controller_id)
        loaded = next((m for m in self.maps if m.content.store == store
                       and m.content.controller == self.controller_id), None)
        if loaded is None:
            raise InvalidInput(f"store '{store}' is not one of controller '{self.controller_id}'s stores")
        if loaded.content.kind == "sql":
            assert loaded.content.connection is not None  # a sql map is validated to have one
            return SqlStore(loaded, self.engine_for(loaded.content.connection))
        return LogStore(loaded, self.log_root, self.vault.indexer)

    def kind(self, store: str) -> str:
        return "vault" if store == VAULT_STORE else next(
            m.content.kind for m in self.maps if m.content.store == store)


def first_identities(stores: Stores, given: IdentitySet) -> IdentitySet:
    """The given identities, and as evidence for the other stores those the vault found with them."""
    return stores.store(VAULT_STORE).search(given).identities.for_next_store()


def known_identities(first: IdentitySet, results: Sequence[StoreResult]) -> IdentitySet:
    """Every identity the stores found, as they judged it: a value one store found shared stays so."""
    known = IdentitySet()
    known.merge(first)
    for result in results:
        known.merge(result.identities)
    return known

"""Test helpers shared by core and end-to-end tests."""

from __future__ import annotations

import sqlalchemy as sa

from include.demo import DemoPerson, demo_people
from include.vault.schema import vault_metadata
from include.vault.store import Vault


def copy_vault_database(vault: Vault, target_url: str) -> None:
    """A full copy of the vault's database, as a backup would take it."""
    target = sa.create_engine(target_url)
    vault_metadata.drop_all(target)
    vault_metadata.create_all(target)
    with vault.engine.connect() as source, target.begin() as dest:
        for table in vault_metadata.sorted_tables:
            rows = [dict(r._mapping) for r in source.execute(sa.select(table))]
            if rows:
                dest.execute(sa.insert(table), rows)
    target.dispose()


def subjects_by_fate(vault: Vault) -> dict[DemoPerson, str]:
    """Each demo person's subject id, found by blind index."""
    found = {}
    for person in demo_people():
        ids = vault.find_subjects(person.controller_id, "email", person.email)
        assert len(ids) == 1, f"demo person of {person.controller_id} ({person.fate}) not found once"
        found[person] = ids[0]
    return found

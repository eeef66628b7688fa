"""Test helpers shared by core and end-to-end tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from include.demo.people import DemoPerson, demo_people
from include.policies.instructions import instructions_in_code
from include.vault.instructions import record_instructions
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


GIVEN_ON = date(2024, 1, 1)


def instruct(vault: Vault, controller_id: str, rules: dict[str, str] | None = None, *,
             given_on: date = GIVEN_ON) -> None:
    """Record instructions for a test controller (default: enquiries and quotes as in the notice),
    under the name and region it is registered with (a new one: '<id> Ltd' in England and Wales)."""
    rules = rules or {"enquiry": "until the enquiry is closed", "quote": "until the enquiry is closed"}
    registered = {c.id: c for c in vault.controllers()}.get(controller_id)
    name, region = (registered.name, registered.region) if registered else (f"{controller_id} Ltd",
                                                                           "england-and-wales")
    record_instructions(vault, [instructions_in_code(controller_id, rules, given_on=given_on, name=name,
                                                     region=region)],
                        actor="test", at=datetime(2024, 1, 1, tzinfo=UTC))


def client_in_both() -> str:
    """A demo client of the shop's controller who is also a shop customer, with a note naming another."""
    from include.demo.shop import SHOP_CONTROLLER, shop_data

    vault_emails = {p.email for p in demo_people() if p.controller_id == SHOP_CONTROLLER}
    return next(r["email"] for r in shop_data().rows["customers"]
                if r["email"] in vault_emails and r["id"] % 4 == 0)

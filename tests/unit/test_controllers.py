"""Controllers are registered from their instruction files: a new one is registered, a new name or
region is recorded and audited, loading twice changes nothing, and `gdpr-admin instructions load`
loads every good file however many others are broken."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.admin import cli
from include.common.errors import InvalidInput
from include.common.paths import DEFAULT_INSTRUCTIONS_DIR
from include.demo.people import CONTROLLERS
from include.policies.instructions import load_instruction_dir, load_instruction_file
from include.requests.register import get_request, register_request
from include.vault.instructions import SyncResult, record_instructions
from include.vault.schema import audit_event

AT = datetime(2026, 10, 1, 9, tzinfo=UTC)
OAK = """\
controller: oak-home
name: Oak Home Interiors Ltd
region: england-and-wales
contact: "Director, Oak Home Interiors Ltd; privacy@oak-home.example"
instructions:
  - category: enquiry
    purpose: answering the enquiry
    legal_basis: legitimate_interests
    retention: until the enquiry is closed
    given_by: Director, Oak Home Interiors
    given_on: 2026-09-01
"""


def write(directory: Path, text: str, name: str = "oak-home.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def load(vault, directory: Path, at: datetime = AT) -> SyncResult:
    return record_instructions(vault, load_instruction_dir(directory), actor="test", at=at)


def events(vault, action: str | None = None) -> list:
    query = sa.select(audit_event).order_by(audit_event.c.seq)
    if action:
        query = query.where(audit_event.c.action == action)
    with vault.engine.connect() as conn:
        return conn.execute(query).all()


def verified(vault) -> bool:
    with vault.engine.connect() as conn:
        return vault.audit.verify(conn).ok


def due_on(vault, controller_id: str, received_on: date) -> date:
    request_id = register_request(vault, controller_id=controller_id, kind="access", received_on=received_on,
                                  identities={"email": [f"someone@{controller_id}.example"]},
                                  actor="test", at=AT)
    return get_request(vault, request_id).due_on


def test_a_new_controller_is_registered_from_its_file(vault, tmp_path):
    write(tmp_path, OAK)
    assert load(vault, tmp_path) == SyncResult(registered=1, recorded=1)
    [oak] = vault.controllers()
    assert (oak.id, oak.name, oak.region, oak.created_at) == ("oak-home", "Oak Home Interiors Ltd",
                                                              "england-and-wales", AT)
    [registered] = events(vault, "controller.registered")
    assert (registered.controller_id, json.loads(registered.details)) == ("oak-home",
                                                                         {"region": "england-and-wales"})
    assert [i.category for i in vault.instruction_book().history("oak-home", "enquiry")] == ["enquiry"]
    # Its region's bank holidays: 2 January 2026 is a working day in England, not in Scotland.
    assert due_on(vault, "oak-home", date(2025, 12, 2)) == date(2026, 1, 2)
    assert verified(vault)


def test_a_change_of_name_or_region_is_recorded_and_audited(vault, tmp_path):
    vault.add_controller("oak-home", "Oak Home Interiors Ltd", "england-and-wales", actor="test")
    write(tmp_path, OAK.replace("Oak Home Interiors Ltd", "Oak Home Ltd"))
    assert load(vault, tmp_path) == SyncResult(changed=1, recorded=1)
    write(tmp_path, OAK.replace("Oak Home Interiors Ltd", "Oak Home Ltd").replace("england-and-wales", "scotland"))
    assert load(vault, tmp_path) == SyncResult(changed=1, unchanged=1)
    [oak] = vault.controllers()
    assert (oak.name, oak.region) == ("Oak Home Ltd", "scotland")
    changes = events(vault, "controller.changed")
    assert [json.loads(e.details) for e in changes] == [
        {"fields": ["name"]},
        {"fields": ["region"], "region_was": "england-and-wales", "region": "scotland"}]
    assert {e.controller_id for e in changes} == {"oak-home"}
    assert due_on(vault, "oak-home", date(2025, 12, 2)) == date(2026, 1, 5)  # Scotland: 2 January off
    assert verified(vault)


def test_a_file_is_recorded_whole_or_not_at_all(vault, tmp_path):
    """A new name in a file that also rewrites a recorded instruction is not kept either."""
    write(tmp_path, OAK)
    load(vault, tmp_path)
    before = len(events(vault))
    write(tmp_path, OAK.replace("Oak Home Interiors Ltd", "Oak Home Ltd").replace("answering", "replying to"))
    with pytest.raises(InvalidInput, match=r"oak-home\.yaml:6: instructions\.0: .*differs from the one recorded"):
        load(vault, tmp_path)
    assert vault.controllers()[0].name == "Oak Home Interiors Ltd"
    assert len(events(vault)) == before


def test_loading_twice_is_idempotent_beside_the_demo_seed(vault, tmp_path):
    for controller_id, name, region in CONTROLLERS:  # as the demo seed registers them
        vault.add_controller(controller_id, name, region, actor="demo-seed")
        write(tmp_path, (DEFAULT_INSTRUCTIONS_DIR / f"{controller_id}.yaml").read_text(), f"{controller_id}.yaml")
    first = load(vault, tmp_path)
    assert (first.registered, first.changed, first.unchanged) == (0, 0, 0) and first.recorded > 0
    count = len(events(vault))
    assert load(vault, tmp_path) == SyncResult(unchanged=first.recorded)
    assert len(events(vault)) == count
    assert [(c.id, c.name, c.region) for c in vault.controllers()] == sorted(CONTROLLERS)
    assert not events(vault, "controller.changed")
    assert verified(vault)


@pytest.mark.parametrize("change, line, message", [
    (("region: england-and-wales", "region: wales"), 3,
     r"region: Input should be 'england-and-wales', 'scotland' or 'northern-ireland'"),
    (("region: england-and-wales\n", ""), 1, r"region: Field required"),
    (("name: Oak Home Interiors Ltd\n", ""), 1, r"name: Field required"),
    (("name: Oak Home Interiors Ltd", "name: ''"), 2, r"name: String should have at least 1 character"),
    (("name: Oak Home Interiors Ltd", f"name: {'Oak ' * 60}Ltd"), 2, r"name: String should have at most 200"),
    (("name: Oak Home Interiors Ltd", "name: ' Oak Home'"), 2, r"name: .*one line, without spaces around it"),
])
def test_a_bad_name_or_region_is_refused_naming_the_file_line_and_field(tmp_path, change, line, message):
    path = write(tmp_path, OAK.replace(*change))
    with pytest.raises(InvalidInput, match=rf"^{path}:{line}: {message}"):
        load_instruction_file(path)


def test_the_shipped_files_give_the_demo_controllers_names_and_regions():
    shipped = {(f.content.controller, f.content.name, f.content.region)
               for f in load_instruction_dir(DEFAULT_INSTRUCTIONS_DIR)}
    assert set(CONTROLLERS) <= shipped


# -- gdpr-admin ---------------------------------------------------------------------------------

@pytest.fixture
def admin(tmp_path, monkeypatch, capsys):
    """include.admin.cli.main with the vault, keyring and instructions under tmp_path: (exit, stdout, stderr)."""
    monkeypatch.setenv("GDPR_VAULT_URL", f"sqlite:///{tmp_path / 'vault.db'}")
    monkeypatch.setenv("GDPR_KEYSTORE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    monkeypatch.setenv("GDPR_KEYRING_PATH", str(tmp_path / "keyring" / "keyring.json"))
    monkeypatch.setenv("GDPR_INSTRUCTIONS_DIR", str(tmp_path / "instructions"))

    def run(*args: str) -> tuple[int, str, str]:
        status = cli.main(list(args))
        out = capsys.readouterr()
        return status, out.out, out.err

    assert run("keyring", "init")[0] == 0
    assert run("vault", "init")[0] == 0
    return run


def test_one_broken_file_among_three_keeps_no_other_out(admin, tmp_path):
    directory = tmp_path / "instructions"
    write(directory, OAK)
    write(directory, OAK.replace("oak-home", "birch-tea").replace("Oak Home Interiors Ltd", "Birch Tea Rooms Ltd")
          .replace("england-and-wales", "scotland"), "birch-tea.yaml")
    broken = write(directory, OAK.replace("oak-home", "elm-garage").replace("england-and-wales", "wales"),
                   "elm-garage.yaml")

    status, out, err = admin("instructions", "load")
    assert status == 1
    assert err.splitlines() == [f"error: {broken}:3: region: Input should be 'england-and-wales', 'scotland' "
                                "or 'northern-ireland'"]
    assert out == (f"instructions from 2 of 3 file(s) in {directory}: 2 controller(s) registered, 0 changed; "
                   "2 instruction(s) recorded, 0 already recorded; 1 file(s) failed\n")
    status, out, _ = admin("controller", "list")
    assert status == 0
    assert out.splitlines() == ["birch-tea          scotland           Birch Tea Rooms Ltd",
                                "oak-home           england-and-wales  Oak Home Interiors Ltd"]

    broken.write_text(broken.read_text().replace("region: wales", "region: england-and-wales"))
    status, out, err = admin("instructions", "load")
    assert (status, err) == (0, "")
    assert "3 of 3 file(s)" in out and "1 controller(s) registered, 0 changed; 1 instruction(s) recorded, " \
                                      "2 already recorded\n" in out
    status, out, err = admin("instructions", "load")  # twice: nothing new
    assert (status, err) == (0, "")
    assert "0 controller(s) registered, 0 changed; 0 instruction(s) recorded, 3 already recorded\n" in out
    assert "audit log intact" in admin("audit", "verify")[1]
    status, out, _ = admin("instructions", "history", "elm-garage")
    assert status == 0 and "enquiry      2026-09-01  in effect  until the enquiry is closed" in out


def test_a_failure_while_recording_is_named_and_the_other_files_still_load(admin, tmp_path):
    directory = tmp_path / "instructions"
    write(directory, OAK)
    assert admin("instructions", "load")[0] == 0
    rewritten = write(directory, OAK.replace("answering", "replying to"))
    write(directory, OAK.replace("oak-home", "birch-tea"), "birch-tea.yaml")
    status, out, err = admin("instructions", "load")
    assert status == 1
    assert err.startswith(f"error: {rewritten}:6: instructions.0: the instruction for 'enquiry'")
    assert len(err.splitlines()) == 1
    assert "2 of 2 file(s)" not in out and "1 of 2 file(s)" in out and "1 controller(s) registered" in out


def test_controller_list_says_how_to_register_when_there_are_none(admin):
    status, out, err = admin("controller", "list")
    assert (status, out) == (0, "")
    assert "gdpr-admin instructions load" in err


def test_a_missing_directory_is_an_error(admin, tmp_path):
    status, _, err = admin("instructions", "load", "--directory", str(tmp_path / "nowhere"))
    assert status == 1 and "instructions directory" in err and "does not exist" in err

"""gdpr-admin, run as staff would run it."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa

from include.demo.people import demo_people
from include.vault.schema import audit_event


@pytest.fixture
def admin(tmp_path):
    env = {**os.environ, "GDPR_VAULT_URL": f"sqlite:///{tmp_path / 'vault.db'}",
           "GDPR_KEYRING_PATH": str(tmp_path / "keyring" / "keyring.json"),
           **{f"GDPR_{name}": str(tmp_path / sub) for name, sub in (
               ("SERVER_LOG_ROOT", "logs"), ("OUTBOX_DIR", "outbox"), ("WORK_DIR", "work"),
               ("REPORTS_DIR", "reports"), ("DISCLOSURES_INBOX", "inbox"))},
           "AIRFLOW_API_URL": "http://127.0.0.1:9"}

    def run(*args, expect=0):
        result = subprocess.run([sys.executable, "-m", "include.admin.cli", *args], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.returncode == expect, result.stdout + result.stderr
        return result.stdout + result.stderr

    run.env = env
    return run


def test_set_up_seed_and_verify(admin, tmp_path):
    assert "keyring created" in admin("keyring", "init")
    assert "keyring kept" in admin("keyring", "init", "--if-missing")
    assert "already exists" in admin("keyring", "init", expect=1)
    assert "vault ready" in admin("vault", "init")
    assert "vault ready" in admin("vault", "init")
    assert "demo seeded" in admin("demo", "seed")
    assert (tmp_path / "logs" / "fenland-cycles" / "access.log").is_file()
    assert "already seeded" in admin("demo", "seed")
    assert "audit log intact" in admin("audit", "verify")
    listing = admin("enquiry", "list", "--controller", "jigowatt", "--open")
    assert listing.count("open") == 2
    person = next(p for p in demo_people() if p.controller_id == "jigowatt" and p.outcome == "open")
    enquiry_id = admin("enquiry", "find", "--controller", "jigowatt", "--email", person.email).split()[0]
    out = admin("enquiry", "outcome", enquiry_id, "answered")
    assert "outcome 'answered' recorded" in out
    assert "unreachable" in out and "hourly enquiry_purge run" in out  # no Airflow here: saved anyway
    assert "already recorded" in admin("enquiry", "outcome", enquiry_id, "answered", "--no-notify")
    rotated = admin("keyring", "rotate")
    assert "version 1 -> 2, 72 data keys and 0 sealed files rewrapped" in rotated
    assert "audit log intact" in admin("audit", "verify")
    subscribed = admin("marketing", "subscribe", "--controller", "fenland-cycles", "--email", "reader@example.org",
                       "--name", "A Reader")
    exported = admin("marketing", "export", "--controller", "fenland-cycles", "--outbox", str(tmp_path / "outbox"))
    assert "1 address(es) sealed in" in exported and "0 on the suppression list, 0 restricted" in exported
    assert "reader@example.org" not in subscribed + exported
    assert "no instruction covering category 'marketing'" in admin("marketing", "export", "--controller", "jigowatt",
                                                                   expect=1)
    for output in (listing, out, rotated, admin("vault", "status")):
        for p in demo_people():
            assert p.email not in output and p.name not in output

    engine = sa.create_engine(admin.env["GDPR_VAULT_URL"])
    with engine.begin() as conn:
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 5).values(actor="someone-else"))
    engine.dispose()
    broken = admin("audit", "verify", expect=1)
    assert "audit log BROKEN" in broken and "event 5: content does not match" in broken


def test_wrong_or_missing_keyring_is_a_clear_error(admin, tmp_path):
    admin("keyring", "init")
    admin("vault", "init")
    size = (tmp_path / "vault.db").stat().st_size
    admin.env["GDPR_KEYRING_PATH"] = str(tmp_path / "missing.json")
    assert "error: no keyring at" in admin("vault", "status", expect=1)
    admin.env["GDPR_KEYRING_PATH"] = str(tmp_path / "other" / "keyring.json")
    admin("keyring", "init")
    assert "is not the keyring of the vault" in admin("demo", "seed", expect=1)
    assert (tmp_path / "vault.db").stat().st_size == size


def test_bad_usage_exits_2(admin):
    admin("enquiry", "outcome", "x", "perhaps", expect=2)


@pytest.fixture
def staff(tmp_path, monkeypatch, capsys):
    """gdpr-admin in this process (a command takes 3 s to start in its own), on a vault with the shipped
    instructions (their controllers registered); each call returns what it printed."""
    from include.admin.cli import main

    for name, value in {"GDPR_VAULT_URL": f"sqlite:///{tmp_path / 'vault.db'}",
                        "GDPR_KEYRING_PATH": str(tmp_path / "keyring" / "keyring.json"),
                        "GDPR_OUTBOX_DIR": str(tmp_path / "outbox")}.items():
        monkeypatch.setenv(name, value)

    def run(*args, expect=0):
        capsys.readouterr()
        status = main(list(args))
        printed = capsys.readouterr()
        assert status == expect, printed.out + printed.err
        return printed.out + printed.err

    for command in (("keyring", "init"), ("vault", "init"), ("instructions", "load")):
        run(*command)
    return run


def test_keyring_show_gives_the_fingerprint_and_versions_and_no_key_material(staff, tmp_path):
    path = tmp_path / "keyring" / "keyring.json"
    shown = json.loads(staff("keyring", "show"))
    keyring = json.loads(path.read_text())
    assert (shown["kek_versions"], shown["active_kek"], len(shown["fingerprint"])) == ([1], 1, 32)
    staff("keyring", "rotate")
    rotated = json.loads(staff("keyring", "show"))
    assert (rotated["kek_versions"], rotated["active_kek"], rotated["fingerprint"]) == ([2], 2, shown["fingerprint"])
    printed = json.dumps(shown) + json.dumps(rotated)
    secrets = (keyring["root_key"], *keyring["keks"].values(), *json.loads(path.read_text())["keks"].values())
    assert sum(secret in printed for secret in secrets) == 0  # a count: a failure never prints a key


def test_a_legal_hold_placed_and_lifted_from_the_cli(staff, tmp_path):
    placed = staff("hold", "place", "--controller", "fenland-cycles", "--reason", "HMRC enquiry", "--until",
                   "2027-01-01")
    hold_id = re.fullmatch(r"legal hold placed: ([0-9a-f]{32})\n", placed)[1]
    assert staff("hold", "lift", hold_id) == f"legal hold {hold_id} lifted\n"
    assert staff("hold", "lift", hold_id) == f"legal hold {hold_id} was already lifted\n"
    assert "legal hold nope does not exist" in staff("hold", "lift", "nope", expect=1)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
    with engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_event.c.action).order_by(audit_event.c.seq)).scalars())
    engine.dispose()
    assert actions[-2:] == ["legal_hold.placed", "legal_hold.lifted"]


def test_instructions_history_from_the_cli_shows_the_replaced_and_the_one_in_effect(staff):
    history = staff("instructions", "history", "fenland-cycles", "server_log").splitlines()
    assert [line.split()[:5] for line in history] == [
        ["server_log", "2024-01-08", "replaced", "90", "days"], ["server_log", "2026-06-01", "in", "effect", "30"]]
    assert "no instructions recorded for controller 'nobody'" in staff("instructions", "history", "nobody", expect=1)


def test_requests_imported_and_listed_from_the_cli(staff, tmp_path):
    backlog = tmp_path / "backlog.csv"
    backlog.write_text("controller,reference,received_on,email\n"
                       "fenland-cycles,T-1,2026-10-29,ada@example.org\nglencoe-outdoor,T-2,2026-10-30,bo@example.org\n")
    assert staff("request", "import", str(backlog)) == f"2 request(s) in {backlog}: 2 registered or already there\n"
    staff("request", "import", str(backlog))  # idempotent: by reference
    everything = staff("request", "list")
    assert [line.split()[0] for line in everything.splitlines()[1:-1]] == ["FENLAND-2026-0001", "GLENCOE-2026-0001"]
    assert everything.splitlines()[-1].startswith("2 requests, ")
    assert "ada@example.org" not in everything and "bo@example.org" not in everything
    # Received 30 October: due one month on, Monday 30 November 2026, St Andrew's Day in Scotland.
    [glencoe] = staff("request", "list", "--controller", "glencoe-outdoor").splitlines()[1:-1]
    assert re.split(r"\s{2,}", glencoe)[1:6] == ["glencoe-outdoor", "access", "received", "30 October 2026",
                                                  "1 December 2026"]
    backlog.write_text("controller,reference,received_on,email\nnobody,T-3,2026-10-29,cy@example.org\n")
    assert "backlog.csv:2: controller: not a controller registered in the vault" in staff(
        "request", "import", str(backlog), expect=1)


def test_a_package_opens_from_the_cli_with_its_secret_file(staff, tmp_path):
    staff("marketing", "subscribe", "--controller", "fenland-cycles", "--email", "reader@example.org", "--name",
          "A Reader")
    staff("marketing", "export", "--controller", "fenland-cycles")
    [package] = (tmp_path / "outbox" / "fenland-cycles").glob("marketing-*.gdprpkg")
    secret = staff("package", "secret", str(package)).strip()
    (tmp_path / "secret").write_text(secret + "\n")
    opened = staff("package", "open", str(package), "--out", str(tmp_path / "opened"), "--secret-file",
                   str(tmp_path / "secret"))
    assert opened.startswith(f"1 file(s) written under {tmp_path / 'opened'}")
    assert (tmp_path / "opened" / "mailing-list.csv").read_text() == "email,name\nreader@example.org,A Reader\n"
    (tmp_path / "wrong").write_text(base64.urlsafe_b64encode(bytes(32)).decode())
    assert "error:" in staff("package", "open", str(package), "--out", str(tmp_path / "refused"), "--secret-file",
                             str(tmp_path / "wrong"), expect=1)
    assert not (tmp_path / "refused").exists()

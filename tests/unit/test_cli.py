"""gdpr-admin, run as staff would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from include.demo.people import demo_people
from include.vault.schema import audit_event

ENV_KEYS = ("GDPR_VAULT_URL", "GDPR_KEYSTORE_URL", "GDPR_KEYRING_PATH")


@pytest.fixture
def admin(tmp_path):
    env = {**os.environ, "GDPR_VAULT_URL": f"sqlite:///{tmp_path / 'vault.db'}",
           "GDPR_KEYRING_PATH": str(tmp_path / "keyring" / "keyring.json"),
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

"""The audit chain: any edit, deletion or reordering is detected."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from include.common.errors import AuditError
from include.vault.schema import audit_event, audit_head

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def logged(vault):
    with vault.engine.begin() as conn:
        for i in range(6):
            vault.audit.append(conn, at=T0 + timedelta(seconds=i), actor="test", action="thing.done",
                               controller_id="acme", subject_id=f"{i:032x}", details={"n": i})
    return vault


def verify(vault):
    with vault.engine.connect() as conn:
        return vault.audit.verify(conn)


def test_intact_chain_verifies(logged):
    result = verify(logged)
    assert result.ok and result.events == 6


@pytest.mark.parametrize("column, value", [
    ("details", '{"n":99}'), ("action", "thing.undone"), ("subject_id", "f" * 32),
    ("at", T0 + timedelta(days=1)),
])
def test_edited_event_is_detected(logged, column, value):
    with logged.engine.begin() as conn:
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 3).values({column: value}))
    result = verify(logged)
    assert not result.ok and any("event 3" in p for p in result.problems)


FOLLOWS = "does not follow the event before it (deleted, inserted or reordered)"


@pytest.mark.parametrize(("seq", "problems"), [
    (1, ["event 1 is missing (deleted)", f"event 2: {FOLLOWS}"]),
    (3, ["event 3 is missing (deleted)", f"event 4: {FOLLOWS}"]),
    (6, ["the head names event 6 but the log ends at event 5 (newest events deleted or replaced)",
         "event 6, which the key store anchors, is missing"]),
])
def test_deleted_event_is_detected(logged, seq, problems):
    with logged.engine.begin() as conn:
        conn.execute(sa.delete(audit_event).where(audit_event.c.seq == seq))
    assert verify(logged).problems == problems


def test_reordered_events_are_detected(logged):
    with logged.engine.begin() as conn:
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 2).values(seq=100))
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 4).values(seq=2))
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 100).values(seq=4))
    result = verify(logged)
    assert not result.ok and any("does not follow" in p for p in result.problems)


def test_recomputed_plain_hash_does_not_pass(logged):
    """Without the keyring nobody can rebuild a valid chain after an edit."""
    import hashlib

    with logged.engine.begin() as conn:
        row = conn.execute(sa.select(audit_event).where(audit_event.c.seq == 6)).one()
        forged = hashlib.sha256(row.prev_hash.encode() + b"forged").hexdigest()
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == 6)
                     .values(details='{"n":0}', hash=forged))
    assert "event 6: content does not match its hash (edited)" in verify(logged).problems


@pytest.mark.parametrize("details", [{"email": "ada@example.com"}, {"note": "Ada Lovelace"},
                                     {"x": ["ok", "a b"]}, {"x": object()}])
def test_plain_text_is_refused_in_details(vault, details):
    with vault.engine.begin() as conn, pytest.raises(AuditError, match="audit detail"):
        vault.audit.append(conn, at=T0, actor="t", action="a", details=details)


# -- `gdpr-admin audit verify` against tampering that the chain and the head row alone let through ---------------


@pytest.fixture
def backups(vault):
    """Six events, one commit each; after each commit, a copy of the head row (a backup's)."""
    heads = {}
    for i in range(6):
        with vault.engine.begin() as conn:
            vault.audit.append(conn, at=T0 + timedelta(seconds=i), actor="test", action="thing.done",
                               controller_id="acme", subject_id=f"{i:032x}", details={"n": i})
        with vault.engine.connect() as conn:
            heads[i + 1] = conn.execute(sa.select(audit_head)).one()._asdict()
    return heads


def put_back(vault, head: dict) -> None:
    with vault.engine.begin() as conn:
        conn.execute(sa.update(audit_head).values(seq=head["seq"], hash=head["hash"], mac=head["mac"]))


def test_the_cli_finds_an_intact_log_intact(backups, audit_verify):
    status, printed = audit_verify()
    assert status == 0 and "audit log intact: 6 events" in printed


def test_the_cli_reports_several_newest_events_removed_with_an_old_head_put_back(vault, backups, audit_verify):
    with vault.engine.begin() as conn:
        conn.execute(sa.delete(audit_event).where(audit_event.c.seq > 3))
    put_back(vault, backups[3])
    status, printed = audit_verify()
    assert status == 1 and "events 4..6 are missing (deleted)" in printed
    assert not verify(vault).ok


@pytest.mark.parametrize("seq", [1, 3, 6])
def test_the_cli_reports_a_deleted_event(vault, backups, audit_verify, seq):
    with vault.engine.begin() as conn:
        conn.execute(sa.delete(audit_event).where(audit_event.c.seq == seq))
    if seq == 6:  # the newest: the head row before it put back, from a backup
        put_back(vault, backups[5])
    status, printed = audit_verify()
    assert status == 1 and f"event {seq} is missing (deleted)" in printed


def test_the_cli_reports_an_inserted_event(vault, backups, audit_verify):
    with vault.engine.begin() as conn:  # events 4..6 move up one, and a copy of event 3 goes in as event 4
        for seq in (6, 5, 4):
            conn.execute(sa.update(audit_event).where(audit_event.c.seq == seq).values(seq=seq + 1))
        copied = conn.execute(sa.select(audit_event).where(audit_event.c.seq == 3)).one()._asdict()
        conn.execute(sa.insert(audit_event).values({**copied, "seq": 4}))
    status, printed = audit_verify()
    assert status == 1
    assert f"event 4: {FOLLOWS}" in printed and "event 4: content does not match its hash (edited)" in printed
    assert "the head names event 6 but the log ends at event 7" in printed


def test_the_cli_reports_a_tampered_head_row(vault, backups, audit_verify):
    with vault.engine.begin() as conn:  # the head moved back one event, without its MAC
        conn.execute(sa.update(audit_head).values(seq=5, hash=backups[5]["hash"]))
    status, printed = audit_verify()
    assert status == 1 and "the head row was altered" in printed
    assert verify(vault).problems == ["the head row was altered"]


@pytest.mark.parametrize("seq", [-1, 0])
def test_the_cli_reports_a_forged_event_with_a_sequence_outside_the_chain(vault, backups, audit_verify, seq):
    with vault.engine.begin() as conn:
        copied = conn.execute(sa.select(audit_event).where(audit_event.c.seq == 3)).one()._asdict()
        conn.execute(sa.insert(audit_event).values({**copied, "seq": seq}))
    status, printed = audit_verify()
    assert status == 1 and f"event {seq}: its sequence is outside the chain" in printed
    assert not verify(vault).ok


# -- the anchor in the key store: current after each commit, never ahead, kept as evidence --------------------------


def anchored(vault) -> int:
    return vault.keystore.audit_anchor().seq


def append(vault, n: int = 0) -> int:
    with vault.engine.begin() as conn:
        return vault.audit.append(conn, at=T0, actor="test", action="thing.done", details={"n": n})


def test_the_anchor_follows_each_commit_and_never_a_rollback(vault):
    assert anchored(vault) == 0
    with vault.engine.begin() as conn:
        for i in range(3):
            vault.audit.append(conn, at=T0, actor="test", action="thing.done", details={"n": i})
        assert anchored(vault) == 0  # not before the vault has committed
    assert anchored(vault) == 3
    with pytest.raises(RuntimeError), vault.engine.begin() as conn:
        vault.audit.append(conn, at=T0, actor="test", action="thing.done")
        raise RuntimeError("the action failed after its event was appended")
    assert anchored(vault) == 3 and verify(vault).ok
    with vault.engine.connect() as conn:  # commit as you go
        vault.audit.append(conn, at=T0, actor="test", action="thing.done")
        conn.rollback()
        vault.audit.append(conn, at=T0, actor="test", action="thing.done")
        conn.commit()
    assert anchored(vault) == 4 and verify(vault).ok


def test_an_anchor_left_behind_by_a_crash_is_tolerated_and_caught_up(vault, monkeypatch, caplog):
    from include.vault.keystore import KeyStore

    append(vault)
    real = KeyStore.raise_audit_anchor

    def lost(self, *args):
        raise ConnectionError("the worker died between the vault's commit and the anchor's write")
    monkeypatch.setattr(KeyStore, "raise_audit_anchor", lost)
    assert append(vault) == 2  # the vault's commit stands; the caller sees no failure
    assert "audit anchor not moved up to event 2" in caplog.text
    monkeypatch.setattr(KeyStore, "raise_audit_anchor", real)
    assert anchored(vault) == 1
    assert verify(vault).ok and anchored(vault) == 2  # behind is accepted; a clean verification catches up
    monkeypatch.setattr(KeyStore, "raise_audit_anchor", lost)
    append(vault)
    monkeypatch.setattr(KeyStore, "raise_audit_anchor", real)
    append(vault)  # the next commit catches up too
    assert anchored(vault) == 4 and verify(vault).ok


def test_after_a_rollback_the_anchor_keeps_the_evidence(vault, backups, audit_verify):
    with vault.engine.begin() as conn:
        conn.execute(sa.delete(audit_event).where(audit_event.c.seq > 2))
    put_back(vault, backups[2])
    for i in range(6):  # the workflows go on: the vault's chain passes the anchored sequence again
        append(vault, 100 + i)
    assert anchored(vault) == 6
    result = verify(vault)
    assert any("event 6 is not the event the key store anchors" in p for p in result.problems)
    assert audit_verify()[0] == 1 and anchored(vault) == 6


def test_an_altered_or_missing_anchor_is_reported(vault, backups, vault_settings, audit_verify):
    from include.vault.schema import audit_anchor
    from include.vault.store import Vault

    with vault.keystore.engine.begin() as conn:
        conn.execute(sa.update(audit_anchor).values(seq=2))
    assert "the audit anchor in the key store was altered" in verify(vault).problems
    with vault.keystore.engine.begin() as conn:
        conn.execute(sa.delete(audit_anchor))
    assert audit_verify()[0] == 1 and any("holds no audit anchor" in p for p in verify(vault).problems)
    Vault.open(vault_settings, create=True).dispose()  # `vault init` anchors the log as it stands
    assert verify(vault).ok and anchored(vault) == 6


def test_concurrent_appends_keep_the_anchor_at_the_head_and_verifications_clean(vault):
    import threading

    failures: list = []
    done = threading.Event()

    def writer(w):
        try:
            for i in range(8):
                append(vault, w * 100 + i)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    def verifier():
        while not done.is_set():
            if problems := verify(vault).problems:
                failures.append(problems)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    checking = threading.Thread(target=verifier)
    checking.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    checking.join()
    assert failures == []
    assert anchored(vault) == 32 and verify(vault).ok

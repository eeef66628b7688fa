"""The audit chain: any edit, deletion or reordering is detected."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from include.errors import AuditError
from include.vault.schema import audit_event

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


@pytest.mark.parametrize("seq", [1, 3, 6])
def test_deleted_event_is_detected(logged, seq):
    with logged.engine.begin() as conn:
        conn.execute(sa.delete(audit_event).where(audit_event.c.seq == seq))
    assert not verify(logged).ok


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
    assert not verify(logged).ok


@pytest.mark.parametrize("details", [{"email": "ada@example.com"}, {"note": "Ada Lovelace"},
                                     {"x": ["ok", "a b"]}, {"x": object()}])
def test_plain_text_is_refused_in_details(vault, details):
    with vault.engine.begin() as conn, pytest.raises(AuditError, match="audit detail"):
        vault.audit.append(conn, at=T0, actor="t", action="a", details=details)

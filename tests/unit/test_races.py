"""A purge or a retention sweep racing a new record for the same person, for real, many times, on
each backend: no record is lost, none is left under a destroyed key, and a record that arrives for
a subject being erased starts a new subject. (SQLite serialises writers; PostgreSQL and MariaDB are
where rows can interleave.)"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from include.duties.enquiries import purge_closed_enquiries
from include.duties.marketing import subscribe
from include.duties.retention import sweep_expired
from include.vault.schema import data_subject, key_to_destroy, record
from include.vault.store import NewRecord, Vault
from tests.helpers import instruct

CONTROLLER = "race-shop"
NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
ITERATIONS = 200


def race(*work) -> None:
    """Run the callables at once, each in its own thread, after a random pause of up to 2 ms so that
    every interleaving gets its turn; re-raise the first failure."""
    barrier, failures = threading.Barrier(len(work)), []

    def run(job):
        barrier.wait()
        threading.Event().wait(random.random() / 500)
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def assert_nothing_lost(vault: Vault, written: list[str]) -> None:
    """Every record written is there and readable; no subject with records is erased or keyless."""
    assert len(vault.read_records(written)) == len(written)
    with vault.engine.connect() as conn:
        live = set(conn.execute(sa.select(record.c.subject_id).distinct()).scalars())
        erased = set(conn.execute(sa.select(data_subject.c.id).where(data_subject.c.erased_at.is_not(None))).scalars())
        pending = set(conn.execute(sa.select(key_to_destroy.c.subject_id)).scalars())
    assert not live & erased and not live & pending
    assert set(vault.keystore.fetch(sorted(live))) == live  # every subject with records has its key


@pytest.fixture
def racing_vaults(vault, vault_settings):
    instruct(vault, CONTROLLER, {"enquiry": "until the enquiry is closed", "marketing": "2 years from collection"})
    with Vault.open(vault_settings) as other:
        yield vault, other


def test_a_purge_racing_a_new_enquiry_loses_nothing(racing_vaults, backend):
    purging, writing = racing_vaults
    written: list[str] = []
    for n in range(ITERATIONS):
        email = f"prospect.{n}@example.org"
        purging.add_records([NewRecord(CONTROLLER, "enquiry", "answering the enquiry", "web form", {"email": email},
                                       created_at=NOW - timedelta(days=3), outcome="declined",
                                       outcome_at=NOW - timedelta(days=1))], actor="test")
        race(lambda: purge_closed_enquiries(purging, now=NOW, actor="test"),
             lambda email=email: written.extend(writing.add_records([NewRecord(
                 CONTROLLER, "enquiry", "answering the enquiry", "web form", {"email": email})], actor="test")))
    assert_nothing_lost(writing, written)
    # Each person's new enquiry either joined their subject before the purge (which then kept it) or
    # started a new one after it: either way one subject per person now holds it.
    for n in range(ITERATIONS):
        assert len(writing.find_subjects(CONTROLLER, "email", f"prospect.{n}@example.org")) == 1


def test_a_retention_sweep_racing_a_new_sign_up_loses_nothing(racing_vaults, backend):
    sweeping, writing = racing_vaults
    written: list[str] = []
    for n in range(ITERATIONS):
        email = f"subscriber.{n}@example.org"
        subscribe(sweeping, controller_id=CONTROLLER, email=email, name="Old Sign-up", source="form", actor="test",
                  at=NOW - timedelta(days=3 * 365))
        race(lambda: sweep_expired(sweeping, controller_id=CONTROLLER, as_of=NOW, actor="test"),
             lambda email=email: written.append(subscribe(writing, controller_id=CONTROLLER, email=email,
                                                          name="New Sign-up", source="form", actor="test", at=NOW)))
    assert_nothing_lost(writing, written)


def test_a_killed_purge_leaves_its_keys_for_the_next_run(racing_vaults, backend, monkeypatch):
    """Keys go after the deletion commits; a run killed in between leaves them listed, and the next
    run destroys them before anything else."""
    vault, _ = racing_vaults
    [enquiry] = vault.add_records([NewRecord(CONTROLLER, "enquiry", "answering the enquiry", "web form",
                                             {"email": "gone@example.org"}, outcome="declined",
                                             outcome_at=NOW - timedelta(days=1))], actor="test")
    [subject] = vault.find_subjects(CONTROLLER, "email", "gone@example.org")
    monkeypatch.setattr(Vault, "destroy_pending_keys", lambda self, subject_ids=None: 0)  # killed after the commit
    purge_closed_enquiries(vault, now=NOW, actor="test")
    with vault.engine.connect() as conn:
        assert conn.execute(sa.select(key_to_destroy.c.subject_id)).scalars().all() == [subject]
    assert vault.keystore.fetch([subject])  # still there, for now
    monkeypatch.undo()
    purge_closed_enquiries(vault, now=NOW, actor="test")
    assert vault.keystore.fetch([subject]) == {}
    with vault.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(key_to_destroy)).scalar() == 0
    assert enquiry not in {r for r in vault.find_records(CONTROLLER, "email", "gone@example.org")}


def test_registrations_racing_for_case_and_complaint_numbers_never_share_one(racing_vaults, backend):
    """Two registrations at once, from two connections, over and over (the first of a year, where the
    counter row does not exist yet, among them): every request and complaint gets its own number, and
    the numbers run on without a gap."""
    from include.requests.complaints import complaints, register_complaint
    from include.requests.register import register_request

    first, second = racing_vaults
    iterations = ITERATIONS // 4
    for i in range(iterations):
        received = (NOW - timedelta(days=400 * (i % 2))).date()  # two years: each year's first is raced too
        race(*(lambda v=v: register_request(v, controller_id=CONTROLLER, kind="access", received_on=received,
                                             identities={"email": [f"racer-{i}@example.org"]}, actor="test", at=NOW)
               for v in (first, second)),
             *(lambda v=v: register_complaint(v, controller_id=CONTROLLER, received_on=received, actor="test", at=NOW)
               for v in (first, second)))
    from include.requests.caseload import caseload

    for year in (NOW.year, NOW.year - 1):
        cases = sorted(line.case_reference for line in caseload(first, today=NOW.date())
                       if line.received_on.year == year)
        assert cases == [f"RACE-{year}-{n:04d}" for n in range(1, iterations + 1)]
        lodged = sorted(c.reference for c in complaints(first, today=NOW.date()) if c.received_on.year == year)
        assert lodged == [f"RACE-{year}-C{n:04d}" for n in range(1, iterations + 1)]

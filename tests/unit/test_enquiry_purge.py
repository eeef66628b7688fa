"""The enquiry purge in the core, on each backend, on the demo data."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from include.common.clock import utcnow
from include.common.errors import DataKeyDestroyed, InvalidInput, UnknownRecord
from include.common.settings import VaultSettings
from include.demo.people import demo_people, seed_demo
from include.duties.enquiries import purge_closed_enquiries, record_outcome
from include.requests.register import close_request
from include.vault.holds import lift_hold, place_hold
from include.vault.schema import key_to_destroy, legal_hold, rights_request
from include.vault.store import NewRecord, Vault
from tests.helpers import copy_vault_database, instruct, subjects_by_fate

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_demo_seeding_is_deterministic_and_kept_on_reseed(demo_vault):
    assert demo_people() == demo_people()
    before = demo_vault.counts()
    assert seed_demo(demo_vault).seeded is False
    assert demo_vault.counts() == before
    assert before["records"] == 196


def test_purge_takes_exactly_the_closed_prospects(demo_vault, store_urls, vault_settings):
    subjects = subjects_by_fate(demo_vault)
    records = {p: demo_vault.subject_record_ids(s) for p, s in subjects.items()}
    copy_vault_database(demo_vault, store_urls["copy"])

    dry = purge_closed_enquiries(demo_vault, now=NOW, actor="test", dry_run=True)
    assert (dry.enquiries, dry.records, dry.subjects_erased) == (20, 28, 20)
    assert (dry.held_by_legal_hold, dry.held_by_open_request) == (4, 4)
    assert demo_vault.counts()["records"] == 196 and demo_vault.keystore.count() == 72

    report = purge_closed_enquiries(demo_vault, now=NOW, actor="test", batch_size=7)
    assert (report.enquiries, report.records, report.subjects_erased, report.batches) == (20, 28, 20, 3)
    purged = {p for p in subjects if p.purged}
    assert len(purged) == 20
    assert set(report.erased_subject_ids) == {subjects[p] for p in purged}
    for person, subject in subjects.items():
        if person.purged:
            assert demo_vault.find_subjects(person.controller_id, "email", person.email) == []
            assert demo_vault.subject_record_ids(subject) == []
            assert demo_vault.keystore.fetch([subject]) == {}
        else:  # clients, contacts, open, held and requested enquiries: all there and readable
            views = demo_vault.read_records(records[person])
            assert len(views) == len(records[person]) > 0, person.fate
            assert all(v.fields.get("name", v.fields.get("billing_name")) == person.name for v in views)

    again = purge_closed_enquiries(demo_vault, now=NOW, actor="test")
    assert (again.enquiries, again.records, again.subjects_erased) == (0, 0, 0)

    # The copy taken before the purge, read with the keyring and key store as they are now.
    copy = Vault.open(VaultSettings(vault_url=store_urls["copy"], keystore_url=vault_settings.keystore_url,
                                    keyring_path=vault_settings.keyring_path))
    with copy:
        for person in purged:
            assert copy.subject_record_ids(subjects[person])  # the ciphertext is in the copy...
            with pytest.raises(DataKeyDestroyed):  # ...and nobody can read it
                copy.read_records(copy.subject_record_ids(subjects[person]))
        kept = next(p for p in subjects if not p.purged)
        assert copy.read_records(copy.subject_record_ids(subjects[kept]))[0].fields["name"] == kept.name


def test_lifting_a_hold_or_closing_a_request_releases_the_data(demo_vault):
    with demo_vault.engine.connect() as conn:
        holds = conn.execute(sa.select(legal_hold.c.id)).scalars().all()
        requests = conn.execute(sa.select(rights_request.c.id)).scalars().all()
    purge_closed_enquiries(demo_vault, now=NOW, actor="test")
    for hold_id in holds:
        assert lift_hold(demo_vault, hold_id, actor="test", at=NOW) is True
        assert lift_hold(demo_vault, hold_id, actor="test", at=NOW) is False
    assert purge_closed_enquiries(demo_vault, now=NOW + timedelta(minutes=1), actor="test").enquiries == 4
    for request_id in requests:
        close_request(demo_vault, request_id, status="completed", actor="test", at=NOW)
    assert purge_closed_enquiries(demo_vault, now=NOW + timedelta(minutes=2), actor="test").enquiries == 4


def test_holds_cover_controller_record_and_expire(vault):
    vault.add_controller("acme", "Acme", "scotland", actor="test")
    instruct(vault, "acme")
    ids = vault.add_records([NewRecord("acme", "enquiry", "p", "web", {"email": f"p{i}@example.com"},
                                       created_at=NOW) for i in range(3)], actor="test")
    for rid in ids:
        record_outcome(vault, rid, "answered", actor="test", at=NOW)
    place_hold(vault, controller_id="acme", reason="HMRC enquiry", actor="test", at=NOW,
               ends_at=NOW + timedelta(days=30))
    place_hold(vault, controller_id="acme", record_ids=[ids[0]], reason="claim", actor="test", at=NOW)
    assert purge_closed_enquiries(vault, now=NOW + timedelta(days=1), actor="test").enquiries == 0
    report = purge_closed_enquiries(vault, now=NOW + timedelta(days=31), actor="test")
    assert report.enquiries == 2 and report.held_by_legal_hold == 1
    assert vault.read_record(ids[0]).outcome == "answered"


def test_outcomes_are_validated_idempotent_and_conversion_protects(vault):
    vault.add_controller("acme", "Acme", "scotland", actor="test")
    instruct(vault, "acme")
    enquiry, other = vault.add_records(
        [NewRecord("acme", "enquiry", "p", "web", {"email": "a@example.com"}),
         NewRecord("acme", "enquiry", "p", "web", {"email": "b@example.com"})], actor="test")
    with pytest.raises(InvalidInput, match="enquiry_id must be a 32-character"):
        record_outcome(vault, "abc", "answered", actor="t", at=NOW)
    with pytest.raises(InvalidInput, match="outcome must be one of"):
        record_outcome(vault, enquiry, "maybe", actor="t", at=NOW)
    with pytest.raises(UnknownRecord, match="does not exist"):
        record_outcome(vault, "f" * 32, "answered", actor="t", at=NOW)
    assert record_outcome(vault, enquiry, "converted", actor="t", at=NOW).changed is True
    assert record_outcome(vault, enquiry, "converted", actor="t", at=NOW).changed is False
    with pytest.raises(InvalidInput, match="was converted"):
        record_outcome(vault, enquiry, "declined", actor="t", at=NOW)
    record_outcome(vault, other, "declined", actor="t", at=NOW)
    report = purge_closed_enquiries(vault, now=utcnow(), actor="t")
    assert report.enquiries == 1
    assert vault.read_record(enquiry).outcome == "converted"


def test_a_prospect_keeps_their_key_while_another_enquiry_is_open(vault):
    vault.add_controller("acme", "Acme", "scotland", actor="test")
    instruct(vault, "acme")
    closed, still_open = vault.add_records(
        [NewRecord("acme", "enquiry", "p", "web", {"email": "a@example.com", "n": "1"}),
         NewRecord("acme", "enquiry", "p", "web", {"email": "a@example.com", "n": "2"})], actor="t")
    record_outcome(vault, closed, "answered", actor="t", at=NOW)
    report = purge_closed_enquiries(vault, now=NOW, actor="t")
    assert (report.enquiries, report.subjects_erased) == (1, 0)
    assert vault.read_record(still_open).fields["n"] == "2"
    record_outcome(vault, still_open, "declined", actor="t", at=NOW)
    assert purge_closed_enquiries(vault, now=NOW, actor="t").subjects_erased == 1


def test_a_purge_that_dies_before_destroying_keys_is_finished_by_the_next_run(demo_vault, monkeypatch):
    """Keys go after their batch commits (a key destroyed before could strand a record written
    meanwhile); a worker lost in between leaves them listed, and the next run destroys them first."""
    before = demo_vault.counts()

    def lost(self, subject_ids):
        raise ConnectionError("worker lost between the commit and the keys' destruction")

    monkeypatch.setattr(Vault, "shred", lost)
    with pytest.raises(ConnectionError):
        purge_closed_enquiries(demo_vault, now=NOW, actor="test", batch_size=5)
    monkeypatch.undo()
    with demo_vault.engine.connect() as conn:
        pending = conn.execute(sa.select(key_to_destroy.c.subject_id)).scalars().all()
    after_crash = demo_vault.counts()
    first_batch = before["records"] - after_crash["records"]  # 5 enquiries and their quotes, committed
    assert first_batch >= 5 and len(pending) == 5
    assert after_crash["data_keys"] == before["data_keys"] and demo_vault.keystore.fetch(pending)  # keys still there
    report = purge_closed_enquiries(demo_vault, now=NOW, actor="test", batch_size=5)
    assert (report.enquiries, report.records, report.subjects_erased) == (15, 28 - first_batch, 15)
    assert demo_vault.counts() == {"records": 168, "live_subjects": 52, "data_keys": 52}
    assert demo_vault.keystore.fetch(pending) == {}
    with demo_vault.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(key_to_destroy)).scalar() == 0
        assert demo_vault.audit.verify(conn).ok


def test_batch_size_is_checked(vault):
    with pytest.raises(InvalidInput, match="batch_size must be a positive whole number"):
        purge_closed_enquiries(vault, now=NOW, actor="t", batch_size=0)

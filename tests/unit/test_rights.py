"""Rectification, erasure, restriction and objection on the demo shop (on each backend), the vault and
the server logs, checked against what the demo generated."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.errors import InvalidInput, Restricted
from include.common.paths import DEFAULT_DATAMAPS_DIR as MAPS
from include.crypto.sealing import open_sealed
from include.datamap.model import load_data_map
from include.demo.shop import SHOP_CONTROLLER, SHOP_TABLES, customer_meta, shop_data, shop_truth
from include.duties.enquiries import purge_closed_enquiries
from include.duties.marketing import export_mailing_list, subscribe
from include.requests.pipeline import RequestSettings, fulfil
from include.requests.register import get_request
from include.requests.rights import register_rights_request
from include.stores.base import Acting
from include.stores.identities import IdentitySet
from include.stores.sql import SqlStore
from include.stores.vault import retained_subject_id
from include.vault.restriction import restricted_subjects
from include.vault.schema import audit_event, data_subject, record
from include.vault.store import NewRecord
from include.vault.suppression import is_suppressed
from tests.helpers import client_in_both

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


def acting(vault) -> Acting:
    return Acting(SHOP_CONTROLLER, "test-request", "test", AT, book=vault.instruction_book())


def settings(tmp_path: Path) -> RequestSettings:
    return RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")


def exercise(stores, tmp_path, kind: str, email: str, *, reference: str, **extra) -> tuple[str, dict]:
    request_id = register_rights_request(stores.vault, controller_id=SHOP_CONTROLLER, kind=kind, received_on=AT.date(),
                                         identities={"email": [email]}, reference=reference, actor="test", at=AT,
                                         **extra)
    return request_id, fulfil(stores.vault, lambda _: stores, request_id, settings(tmp_path), on=AT.date(),
                              actor="test", at=AT)


def shop_rows(engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {t.name: [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.id)).mappings()]
                for t in SHOP_TABLES}


def log_lines(root: Path) -> list[str]:
    lines = []
    for path in sorted((root / "fenland-cycles").glob("access.log*")):
        data = path.read_bytes()
        lines += (gzip.decompress(data) if path.suffix == ".gz" else data).decode().splitlines()
    return lines


def vault_state(vault) -> dict:
    """Records, subjects and the subjects' data keys (a request's own key is the register's)."""
    with vault.engine.connect() as conn:
        records = conn.execute(sa.select(record.c.id, record.c.subject_id).order_by(record.c.id)).all()
        subjects = conn.execute(sa.select(data_subject.c.id, data_subject.c.erased_at)
                                .order_by(data_subject.c.id)).all()
    return {"records": records, "subjects": [(s, erased is not None) for s, erased in subjects],
            "keys": sorted(vault.keystore.fetch([s for s, _ in subjects]))}


def personal_values(email: str) -> dict[str, list[str]]:
    truth = shop_truth(email)
    customer = truth.rows["customers"][0]
    return {"email": [email, email.upper()], "phone": [customer["phone"]],
            "name": [f"{customer['first_name']} {customer['last_name']}"], "ip": truth.ips}


def test_an_erasure_leaves_only_what_a_legal_reason_keeps_and_a_second_changes_nothing(stores, shop, tmp_path):
    vault, email = stores.vault, client_in_both()
    truth = shop_truth(email)
    customer_id = truth.rows["customers"][0]["id"]
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    invoices = [v.id for v in vault.read_records(vault.subject_record_ids(subject))
                if v.category == "invoice" and v.retention_end > AT]
    assert invoices and len(invoices) < len(vault.subject_record_ids(subject))

    request_id, outcome = exercise(stores, tmp_path, "erase", email, reference="E-1")
    assert get_request(vault, request_id).status == "completed" and outcome["status"] == "completed"

    # The vault: the old key is destroyed; the invoices live on under a new, restricted subject.
    assert vault.keystore.fetch([subject]) == {} and vault.subject_record_ids(subject) == []
    kept_by = retained_subject_id(subject)
    assert vault.subject_record_ids(kept_by) == sorted(invoices)
    assert {v.fields["email"] for v in vault.read_records(invoices)} == {email}
    assert kept_by in restricted_subjects(vault, [kept_by])
    assert vault.find_subjects(SHOP_CONTROLLER, "email", email) == [kept_by]

    # The shop, by its map: the account masked, addresses and personal meta gone (meta that is not
    # personal stays), orders and lines kept.
    rows = shop_rows(shop)
    [account] = [r for r in rows["customers"] if r["id"] == customer_id]
    assert account["email"] == "[erased]" and account["first_name"] is None and account["last_login_ip"] is None
    assert not [r for r in rows["addresses"] if r["customer_id"] == customer_id]
    assert [r["meta_key"] for r in rows["customer_meta"] if r["customer_id"] == customer_id] == ["newsletter_source"]
    order_ids = {o["id"] for o in truth.rows["orders"]}
    assert {o["id"] for o in rows["orders"] if o["customer_id"] == customer_id} == order_ids
    assert len([r for r in rows["order_lines"] if r["order_id"] in order_ids]) == len(truth.rows["order_lines"])
    assert {r["note"] for r in rows["order_notes"] if r["order_id"] in order_ids} <= {"[erased]"}

    # Nothing of the person in plain text anywhere, but the IP addresses of the orders kept.
    kept_orders = repr([o for o in rows["orders"] if o["id"] in order_ids])
    elsewhere = repr({t: [r for r in rs if t != "orders" or r["id"] not in order_ids] for t, rs in rows.items()})
    lines = log_lines(tmp_path / "logs")
    for kind, values in personal_values(email).items():
        for value in values:
            assert value.lower() not in elsewhere.lower(), (kind, value)
            assert not [line for line in lines if line.startswith(value + " ") or value in line], (kind, value)
    assert all(ip in kept_orders for ip in truth.ips[1:2])  # the order-only address, kept with its order

    # The confirmation lists what was kept, why and until when; it names no personal value.
    confirmation = json.loads(Path(outcome["confirmation"]).with_suffix(".json").read_text())
    kept = {(s["store"], k["table"]): k for s in confirmation["stores"] for k in s["kept"]}
    assert kept[("vault", "invoice")]["reason"].startswith("Art. 17(3)(b)") and kept[("vault", "invoice")]["until"]
    assert kept[("fenland-shop", "orders")]["until"] and "HMRC" not in kept[("fenland-shop", "orders")]["reason"]
    done = {(s["store"], d["table"]): d for s in confirmation["stores"] for d in s["done"]}
    assert done[("fenland-shop", "customers")]["action"] == "mask"
    assert done[("fenland-logs", "access.log")]["records"] + done.get(("fenland-logs", "access.log.1"), {}).get(
        "records", 0) + done.get(("fenland-logs", "access.log.2.gz"), {}).get("records", 0) == truth.visit_count
    html = Path(outcome["confirmation"]).read_text()
    for values in personal_values(email).values():
        assert not [v for v in values if v in html]

    # A second erasure finds the kept records and changes nothing.
    before = (shop_rows(shop), log_lines(tmp_path / "logs"), vault_state(vault))
    again_id, again = exercise(stores, tmp_path, "erase", email, reference="E-2")
    assert (shop_rows(shop), log_lines(tmp_path / "logs"), vault_state(vault)) == before
    assert get_request(vault, again_id).status == "completed"
    second = json.loads(Path(again["confirmation"]).with_suffix(".json").read_text())
    assert sorted(k["key"] for s in second["stores"] if s["store"] == "vault" for k in s["kept"]) == sorted(invoices)
    with vault.engine.connect() as conn:  # every store's part is audited, and the chain holds
        assert vault.audit.verify(conn).ok
        actions = set(conn.execute(sa.select(audit_event.c.action)).scalars())
    assert {"erasure.vault", "erase.store", "restriction.placed", "request.completed"} <= actions


def test_an_erasure_scrubs_the_person_from_other_peoples_notes_and_keeps_the_rest_of_them(stores, shop, tmp_path):
    writer = shop_truth(client_in_both())  # whose order note names a neighbour: the person erased here
    [note] = writer.rows["order_notes"]
    name, email = writer.others_named
    assert note["note"] == f"If I am out, my neighbour {name} ({email}) will take it in."
    _, outcome = exercise(stores, tmp_path, "erase", email, reference="S-1")
    assert outcome["status"] == "completed"

    rows = shop_rows(shop)  # named by note id only, never by what a note says
    assert [r["id"] for r in rows["order_notes"] if name.lower() in r["note"].lower()
            or email.lower() in r["note"].lower()] == []
    [after] = [r["note"] for r in rows["order_notes"] if r["id"] == note["id"]]
    assert after == "If I am out, my neighbour [erased] ([erased]) will take it in."
    unchanged = {r["id"]: r["note"] for r in shop_data().rows["order_notes"] if r["id"] != note["id"]}
    named = {r["id"] for r in shop_truth(email).rows["order_notes"]}  # the person's own: masked as their rows
    assert {r["id"]: r["note"] for r in rows["order_notes"] if r["id"] not in named | {note["id"]}} == {
        key: text for key, text in unchanged.items() if key not in named}
    confirmation = json.loads(Path(outcome["confirmation"]).with_suffix(".json").read_text())
    done = [(d["table"], d["action"], d["records"]) for s in confirmation["stores"] if s["store"] == "fenland-shop"
            for d in s["done"]]
    assert ("order_notes", "remove mentions from note", 1) in done


def test_every_kept_order_line_is_dated_by_its_order(stores, shop):
    email = client_in_both()
    loaded = load_data_map(MAPS / "fenland-shop.yaml")
    plan = SqlStore(loaded, shop).plan_erasure(IdentitySet.given([("email", email)]), acting(stores.vault))
    orders = {o["id"]: o for o in shop_truth(email).rows["orders"]}
    lines = shop_truth(email).rows["order_lines"]
    until = {(k.table, k.key): k.until for k in plan.kept}
    for line in lines:
        assert until[("order_lines", str(line["id"]))] == until[("orders", str(line["order_id"]))]
    for order_id, order in orders.items():
        placed = order["placed_at"].date()
        year_end = date(placed.year if placed <= date(placed.year, 3, 31) else placed.year + 1, 3, 31)
        assert until[("orders", str(order_id))].startswith(date(year_end.year + 7, 4, 1).isoformat())


def test_a_rectified_email_is_found_everywhere_the_old_one_was_and_the_old_one_nowhere(stores, shop, tmp_path):
    vault, email, new = stores.vault, client_in_both(), "Corrected.Address@Example.net"
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    vault_before = vault.find_records(SHOP_CONTROLLER, "email", email)
    shop_before = [r["id"] for r in shop_rows(shop)["customers"] if r["email"].lower() == email.lower()]
    assert vault_before and shop_before

    request_id, _ = exercise(stores, tmp_path, "rectify", email, reference="R-1", corrections={"email": new},
                             particulars={"field": "email"})
    assert get_request(vault, request_id).status == "completed"
    assert vault.find_records(SHOP_CONTROLLER, "email", email) == []
    assert vault.find_records(SHOP_CONTROLLER, "email", new) == vault_before
    assert {v.fields["email"] for v in vault.read_records(vault_before)} == {"corrected.address@example.net"}
    assert vault.find_subjects(SHOP_CONTROLLER, "email", new) == [subject]
    rows = shop_rows(shop)
    assert email.lower() not in repr(rows).lower()
    assert [r["id"] for r in rows["customers"] if r["email"] == "corrected.address@example.net"] == shop_before


def test_a_rectified_phone_is_written_where_the_old_one_was_key_value_phones_too(stores, shop, tmp_path):
    vault, email = stores.vault, client_in_both()
    [customer] = shop_truth(email).rows["customers"]
    phone, new = customer["phone"], "01632 960999"  # an Ofcom drama number no one in the demo has
    assert phone == "+44(0)1632 960711"
    with shop.begin() as conn:  # a billing phone in a key-value row: the same number, spelled nationally
        conn.execute(sa.insert(customer_meta).values(id=10_000, customer_id=customer["id"],
                                                   meta_key="billing_phone", meta_value="01632 960711"))
    vault_before = vault.find_records(SHOP_CONTROLLER, "phone", phone)
    assert vault_before

    request_id = register_rights_request(vault, controller_id=SHOP_CONTROLLER, kind="rectify", received_on=AT.date(),
                                         identities={"email": [email], "phone": [phone]}, corrections={"phone": new},
                                         particulars={"field": "phone"}, reference="P-1", actor="test", at=AT)
    fulfil(vault, lambda _: stores, request_id, settings(tmp_path), on=AT.date(), actor="test", at=AT)
    assert get_request(vault, request_id).status == "completed"
    assert vault.find_records(SHOP_CONTROLLER, "phone", phone) == []
    assert vault.find_records(SHOP_CONTROLLER, "phone", "+44 1632 960999") == vault_before
    rows = shop_rows(shop)  # rows named by id, never by the numbers they hold
    assert {r["id"]: r["phone"] == "+441632960999" for r in rows["customers"] if r["id"] == customer["id"]} == {
        customer["id"]: True}
    assert {r["id"]: r["meta_value"] == "+441632960999" for r in rows["customer_meta"] if r["id"] == 10_000} == {
        10_000: True}
    assert not [r["id"] for t in ("customers", "customer_meta") for r in rows[t] if "960711" in repr(r)]


def test_a_suppression_follows_a_rectified_email(stores, tmp_path):
    vault, email, new = stores.vault, client_in_both(), "corrected.address@example.net"
    exercise(stores, tmp_path, "object", email, reference="M-1", particulars={"ground": "direct_marketing"})
    assert is_suppressed(vault, SHOP_CONTROLLER, email) and not is_suppressed(vault, SHOP_CONTROLLER, new)
    request_id, _ = exercise(stores, tmp_path, "rectify", email, reference="M-2", corrections={"email": new},
                             particulars={"field": "email"})
    assert get_request(vault, request_id).status == "completed"
    assert is_suppressed(vault, SHOP_CONTROLLER, new)
    subscribe(vault, controller_id=SHOP_CONTROLLER, email=new, name="Signed Up Again", source="signup form",
              actor="test", at=AT)
    export = export_mailing_list(vault, controller_id=SHOP_CONTROLLER, outbox=tmp_path / "outbox", actor="test", at=AT)
    assert (export.exported, export.suppressed) == (0, 1)


def test_restricted_data_is_only_stored_and_lifting_needs_the_person_told(stores, shop, tmp_path):
    vault, email = stores.vault, client_in_both()
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    for address, name in ((email, "Restricted Person"), ("someone.else@example.org", "Someone Else")):
        subscribe(vault, controller_id=SHOP_CONTROLLER, email=address, name=name, source="signup form", actor="test",
                  at=AT)
    _, done = exercise(stores, tmp_path, "restrict", email, reference="S-1")
    assert done["status"] == "completed" and subject in restricted_subjects(vault, [subject])

    refused_id, refused = exercise(stores, tmp_path, "rectify", email, reference="S-2",
                                   corrections={"email": "other@example.net"})
    request = get_request(vault, refused_id)
    assert request.status == "refused" and "restricted" in request.refusal_reason and refused["status"] == "refused"
    assert vault.find_records(SHOP_CONTROLLER, "email", email)  # nothing changed
    assert email in repr(shop_rows(shop))

    with pytest.raises(Restricted, match="marketing signup refused: the data of subject .* is restricted"):
        subscribe(vault, controller_id=SHOP_CONTROLLER, email=email, name="Again", source="signup form",
                  actor="test", at=AT)
    export = export_mailing_list(vault, controller_id=SHOP_CONTROLLER, outbox=tmp_path / "outbox", actor="test", at=AT)
    csv = open_sealed(export.path.read_bytes(), keyring=vault.keyring)["mailing-list.csv"].decode()
    assert export.restricted == 1 and email not in csv and "someone.else@example.org" in csv
    with vault.engine.connect() as conn:
        refusals = conn.execute(sa.select(audit_event.c.details).where(
            audit_event.c.action == "restriction.refused")).scalars().all()
    assert {json.loads(d)["operation"] for d in refusals} == {"rectification", "marketing_signup", "marketing_export"}

    with pytest.raises(InvalidInput, match=r"day the person was told \(Art. 18\(3\)\)"):
        exercise(stores, tmp_path, "lift_restriction", email, reference="S-3")
    _, lifted = exercise(stores, tmp_path, "lift_restriction", email, reference="S-4",
                         particulars={"person_told_on": "2026-11-20"})
    assert lifted["status"] == "completed" and restricted_subjects(vault, [subject]) == {}


def test_an_objection_to_marketing_outlives_erasure_and_a_new_signup(stores, tmp_path):
    vault, email = stores.vault, client_in_both()
    _, done = exercise(stores, tmp_path, "object", email, reference="O-1", particulars={"ground": "direct_marketing"})
    assert done["status"] == "completed" and is_suppressed(vault, SHOP_CONTROLLER, email)
    exercise(stores, tmp_path, "erase", email, reference="O-2")
    assert is_suppressed(vault, SHOP_CONTROLLER, email.upper())
    subscribe(vault, controller_id=SHOP_CONTROLLER, email=email, name="Signed Up Again", source="signup form",
              actor="test", at=AT)
    export = export_mailing_list(vault, controller_id=SHOP_CONTROLLER, outbox=tmp_path / "outbox", actor="test", at=AT)
    assert export.exported == 0 and export.suppressed == 1
    assert email not in open_sealed(export.path.read_bytes(), keyring=vault.keyring)["mailing-list.csv"].decode()


def test_an_objection_on_other_grounds_restricts_the_data_while_the_controller_decides(stores, tmp_path):
    vault, email = stores.vault, client_in_both()
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    request_id, other = exercise(stores, tmp_path, "object", email, reference="O-3", particulars={"ground": "other"})
    assert other["status"] == "awaiting the controller's decision" and get_request(vault, request_id).is_open
    assert subject in restricted_subjects(vault, [subject])
    assert not is_suppressed(vault, SHOP_CONTROLLER, email)  # not an objection to marketing
    refused_id, _ = exercise(stores, tmp_path, "rectify", email, reference="O-4",
                             corrections={"email": "other@example.net"}, particulars={"field": "email"})
    assert get_request(vault, refused_id).status == "refused"


def test_unknown_rights_and_uncovered_categories_are_refused(stores, shop, tmp_path):
    vault = stores.vault
    with pytest.raises(InvalidInput, match="right 'forget' is not one of rectify, erase"):
        exercise(stores, tmp_path, "forget", client_in_both(), reference="U-1")
    with pytest.raises(InvalidInput, match="controller 'jigowatt' has no instruction covering category 'marketing'"):
        export_mailing_list(vault, controller_id="jigowatt", outbox=tmp_path / "outbox", actor="test", at=AT)
    uncovered = tmp_path / "fenland-shop.yaml"
    uncovered.write_text((MAPS / "fenland-shop.yaml").read_text().replace("instruction: shop_order_note",
                                                                          "instruction: shop_gift_message"))
    with pytest.raises(InvalidInput, match="table order_notes: controller 'fenland-cycles' has no instruction "
                                           "covering category 'shop_gift_message'"):
        SqlStore(load_data_map(uncovered), shop).plan_erasure(IdentitySet.given([("email", client_in_both())]),
                                                              acting(vault))


def test_a_new_enquiry_after_an_erasure_that_kept_records_starts_a_new_subject_the_purge_can_take(stores, tmp_path):
    vault, email = stores.vault, client_in_both()
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    exercise(stores, tmp_path, "erase", email, reference="N-1")
    kept_by = retained_subject_id(subject)
    assert vault.find_subjects(SHOP_CONTROLLER, "email", email) == [kept_by]  # the invoices kept, restricted

    [enquiry] = vault.add_records([NewRecord(SHOP_CONTROLLER, "enquiry", "answering the enquiry", "web form",
                                             {"email": email}, outcome="declined", outcome_at=AT)], actor="test")
    new = vault.read_record(enquiry).subject_id
    assert new not in (subject, kept_by) and not restricted_subjects(vault, [new])
    purge_closed_enquiries(vault, now=AT + timedelta(days=1), actor="test")
    assert vault.find_subjects(SHOP_CONTROLLER, "email", email) == [kept_by]  # the new one purged, the kept stay
    assert vault.keystore.fetch([new]) == {} and vault.keystore.fetch([kept_by])

"""Gathering a person's data: the demo shop on each backend, the vault and the server logs, checked
against what the demo generated."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.errors import InvalidInput, KeyringError, StoreUnavailable
from include.common.paths import DEFAULT_DATAMAPS_DIR as MAPS
from include.crypto.sealing import open_sealed, seal
from include.datamap.model import load_data_map
from include.demo.shop import SHOP_CONTROLLER, shop_data, shop_truth
from include.requests.access import searched
from include.requests.gather import known_identities
from include.requests.package import build_package
from include.requests.pipeline import Case, RequestSettings, fulfil, work_on_stores
from include.requests.register import get_request, register_request, request_identities
from include.stores.identities import IdentitySet
from include.stores.redaction import WITHHELD, Redactor, name_words
from include.stores.sql import SqlStore
from tests.helpers import client_in_both

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


def by_store(results) -> dict:
    return {result.store: result for result in results}


def gather(stores, work_dir: Path, **identities: str) -> tuple[str, list]:
    """A new access request given these identities, and every store's findings, through the pipeline's
    steps."""
    request_id = register_request(stores.vault, controller_id=SHOP_CONTROLLER, kind="access",
                                  received_on=date(2026, 11, 24),
                                  identities={kind: [value] for kind, value in identities.items()}, actor="test", at=AT)
    settings = RequestSettings(work_dir=work_dir, outbox_dir=work_dir / "outbox")
    work_on_stores(stores.vault, lambda _: stores, request_id, settings, actor="test", at=AT)
    case = Case.open(stores.vault, stores, request_id, settings, actor="test", at=AT)
    return request_id, searched(case, stores.ids())


def test_every_record_of_the_person_is_found_in_every_store_and_nobody_elses(stores, tmp_path):
    email = client_in_both()
    truth = shop_truth(email)
    results = by_store(gather(stores, tmp_path, email=email)[1])
    assert set(results) == {"vault", "fenland-shop", "fenland-logs"}

    shop_found = {}
    for found in results["fenland-shop"].records:
        shop_found.setdefault(found.table, set()).add(int(found.key))
    expected = {table: {r["id"] for r in rows if table != "customer_meta" or r["meta_key"] != "newsletter_source"}
                for table, rows in truth.rows.items()}
    assert shop_found == {t: ids for t, ids in expected.items() if ids}
    customer = next(f for f in results["fenland-shop"].records if f.table == "customers")
    assert customer.data["email"] == email and customer.found_by.startswith(f"email {email}")
    assert customer.data["preferences"]["frame_size"] in "SML"  # a JSON column, parsed
    line = next(f for f in results["fenland-shop"].records if f.table == "order_lines")
    assert line.found_by.startswith(f"email {email} (given in the request) -> customers.email #")
    assert re.search(r"-> orders #\d+ \(orders.customer_id\) -> order_lines #\d+ \(order_lines.order_id\)$", line.found_by)

    log_lines = results["fenland-logs"].records
    assert len(log_lines) == truth.visit_count
    assert {f.data["line"].split()[0] for f in log_lines} == set(truth.ips)
    order_only_ip = truth.ips[1]  # seen only on an order, never on the account
    via_order = [f for f in log_lines if f.data["line"].startswith(order_only_ip + " ")]
    assert via_order and all("orders.customer_ip" in f.found_by for f in via_order)

    vault_records = results["vault"].records
    assert vault_records and {f.data.get("email") for f in vault_records if "email" in f.data} == {email}
    others = [r["email"] for r in shop_data().rows["customers"] if r["email"] != email]
    everything = repr([f.data for result in results.values() for f in result.records
                       if f.table != "order_notes"])
    assert not [other for other in others if other in everything]


def test_an_unknown_person_is_found_nowhere(stores, tmp_path):
    _, results = gather(stores, tmp_path, email="nobody.here@example.org")
    assert [len(result.records) for result in results] == [0, 0, 0]


def test_access_by_customer_number_finds_what_the_email_finds(stores, tmp_path):
    email = client_in_both()
    [customer] = shop_truth(email).rows["customers"]
    assert customer["customer_no"] == "FC10004"
    by_email = by_store(gather(stores, tmp_path, email=email)[1])
    by_number = by_store(gather(stores, tmp_path, customer_number=" fc10004 ")[1])

    def found(results, store):
        return sorted((f.table, f.key) for f in results[store].records)
    for store in ("fenland-shop", "fenland-logs"):
        assert found(by_number, store) == found(by_email, store) != []
    customers = [f for f in by_number["fenland-shop"].records if f.table == "customers"]
    assert [f.found_by.startswith("customer_number FC10004 (given in the request)") for f in customers] == [True]


def test_an_ip_address_is_never_used_to_search_a_sql_table(stores, shop, tmp_path):
    truth = shop_truth(client_in_both())
    login_ip, order_ip = truth.ips  # on the account, and on an order only
    for ip in (login_ip, order_ip):
        store = SqlStore(load_data_map(MAPS / "fenland-shop.yaml"), shop)
        result = store.search(IdentitySet.given([("ip", ip)]))
        assert ([(f.table, f.key) for f in result.records], len(result.held)) == ([], 0)  # no row's values shown
        by_ip = by_store(gather(stores, tmp_path, ip=ip)[1])
        assert [(f.table, f.key) for f in by_ip["fenland-shop"].records] == []
        hosts = {f.data["line"].split()[0] for f in by_ip["fenland-logs"].records}
        assert by_ip["fenland-logs"].records and hosts == {ip}


def test_a_map_naming_a_column_the_store_lacks_is_refused_with_its_line(shop, tmp_path):
    text = (MAPS / "fenland-shop.yaml").read_text().replace("postcode: {category", "post_code: {category")
    broken = tmp_path / "fenland-shop.yaml"
    broken.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "post_code" in t)
    with pytest.raises(InvalidInput, match=rf"fenland-shop.yaml:{line}: tables.addresses.columns.post_code: "
                                           r"column 'post_code' is not in table 'addresses'"):
        SqlStore(load_data_map(broken), shop).search(IdentitySet.given([("email", client_in_both())]))


def test_a_store_that_is_down_is_reported_as_unavailable(tmp_path):
    down = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    with pytest.raises(StoreUnavailable, match="store 'fenland-shop' cannot be searched: OperationalError"):
        SqlStore(load_data_map(MAPS / "fenland-shop.yaml"), down).search(IdentitySet.given([("email", "a@b.org")]))


def make_package(stores, email: str, work_dir: Path, on=date(2026, 11, 24)):
    request_id, results = gather(stores, work_dir, email=email)
    given = IdentitySet.given(request_identities(stores.vault, request_id))
    identities = known_identities(given, results)
    own = name_words([f.data.get(c) for r in results for f in r.records
                      for c in ("name", "first_name", "last_name", "billing_name")] + ["Fenland Cycles Ltd"])
    files = build_package(request=get_request(stores.vault, request_id), controller_name="Fenland Cycles Ltd",
                          results=results, maps=stores.maps, book=stores.vault.instruction_book(),
                          redactor=Redactor(identities, own), on=on)
    return request_id, files


def test_the_package_holds_the_persons_data_withholds_others_and_opens_only_with_its_secret(stores, tmp_path):
    email = client_in_both()
    truth = shop_truth(email)
    request_id, files = make_package(stores, email, tmp_path)
    everything = b"".join(data for name, data in files.items() if name != "report.pdf").decode()
    assert email in everything and all(ip in everything for ip in truth.ips)
    assert truth.others_named and not [other for other in truth.others_named if other in everything]
    notes = json.loads(files["data/fenland-shop/order_notes.json"])
    assert any(WITHHELD in note["note"] for note in notes)
    assert set(json.loads(files["data/fenland-shop/orders.json"])[0]) >= {"id", "customer_id", "found_by"}
    assert "customers.csv" in " ".join(files) and b"preferences.frame_size" in files["data/fenland-shop/customers.csv"]
    report = files["report.html"].decode()
    for promised in ("supplying and accounting for web-shop orders", "7 years from the end of the financial year",
                     "legal obligation", "Art. 17(3)(b)", "Information Commissioner", "rectification", "objection"):
        assert promised in report, promised
    manifest = json.loads(files["manifest.json"])
    assert manifest["withheld_values"] >= 2 and manifest["stores_searched"] == ["fenland-logs", "fenland-shop", "vault"]

    sealed, secret = seal(files, keyring=stores.vault.keyring, reference=request_id)
    assert email.encode() not in sealed and b"order_notes" not in sealed
    assert open_sealed(sealed, secret=secret) == files
    assert open_sealed(sealed, keyring=stores.vault.keyring) == files
    with pytest.raises(KeyringError, match="does not open"):
        open_sealed(sealed, secret=base64.urlsafe_b64encode(b"x" * 32).decode())
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(KeyringError, match="or was altered"):
        open_sealed(tampered, secret=secret)


def test_an_unknown_person_gets_a_no_data_held_package(stores, tmp_path):
    _, files = make_package(stores, "nobody.here@example.org", tmp_path)
    assert [name for name in files if name.startswith("data/")] == []
    assert "No personal data held" in files["report.html"].decode()


def test_a_request_registered_for_a_vault_subject_is_answered_from_their_identities(stores, tmp_path):
    email = client_in_both()
    subject_id = stores.vault.find_subjects(SHOP_CONTROLLER, "email", email)[0]
    request_id = register_request(stores.vault, controller_id=SHOP_CONTROLLER, kind="access", subject_id=subject_id,
                                  received_on=date(2026, 11, 24), actor="test", at=AT)
    settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")
    done = fulfil(stores.vault, lambda controller_id: stores, request_id, settings, on=date(2026, 11, 24),
                  actor="test", at=AT)
    files = open_sealed(Path(done["package"]).read_bytes(), keyring=stores.vault.keyring)
    manifest = json.loads(files["manifest.json"])
    assert {t["store"] for t in manifest["tables"]} == {"vault", "fenland-shop", "fenland-logs"}
    assert get_request(stores.vault, request_id).status == "completed"
    assert not (tmp_path / "work" / request_id).exists()  # the encrypted scratch files are gone

"""What a person reads: the access package's report, in HTML and as the PDF printed from it, and the
confirmations of a rights request (for the controller and for the person), checked for what Art. 15
and the issue ask: the case reference, the controller's contact, every table's plain label and
source, the recipients of the person's categories, Art. 20 where it applies, the person's own values,
and no other person's value anywhere.

The demo's shop controller on SQLite: the report does not depend on the vault's backend.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from include.common.paths import DEFAULT_INSTRUCTIONS_DIR, DEFAULT_RECIPIENTS_FILE
from include.crypto.sealing import open_sealed
from include.demo.people import demo_people
from include.demo.shop import SHOP_CONTROLLER, shop_data, shop_truth
from include.duties.disclosures import load_register
from include.policies.instructions import load_instruction_file
from include.requests.package import LOG_LABEL, LOG_SOURCE, VAULT_LABELS, VAULT_SOURCES
from include.requests.pipeline import RequestSettings, fulfil
from include.requests.register import get_request, register_request, with_case_reference
from include.requests.rights import person_confirmation_path, register_rights_request
from include.vault.schema import case_reference
from tests.helpers import client_in_both

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
RECEIVED = date(2026, 11, 24)


@pytest.fixture
def backend() -> str:
    return "sqlite"


def squeezed(text: str) -> str:
    """Text without its whitespace: a PDF breaks long values (an email address in a narrow cell) across lines."""
    return "".join(text.split())


def shown(value: str, text: str, window: int = 800) -> bool:
    """The value in the text, its characters in order within `window` characters: a PDF's text runs
    row by row across a table, so a cell's lines come between the other cells' lines."""
    wanted, flat = squeezed(value), squeezed(text)
    start = flat.find(wanted[0])
    while start != -1:
        found, at = 0, start
        while at < min(len(flat), start + window) and found < len(wanted):
            found += flat[at] == wanted[found]
            at += 1
        if found == len(wanted):
            return True
        start = flat.find(wanted[0], start + 1)
    return False


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def others_values(email: str) -> list[str]:
    """Values of other people the demo holds: the shop's other customers, the vault's other people."""
    truth = shop_truth(email)
    assert truth is not None
    customers = [r for r in shop_data().rows["customers"] if r["email"] != email]
    return sorted({*(r["email"] for r in customers), *(f"{r['first_name']} {r['last_name']}" for r in customers
                                                      if r["first_name"] and r["last_name"]),
                   *(p.email for p in demo_people() if p.email != email), *truth.others_named})


def access_package(stores, email: str, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    request_id = register_request(stores.vault, controller_id=SHOP_CONTROLLER, kind="access", received_on=RECEIVED,
                                  identities={"email": [email]}, actor="test", at=AT)
    settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")
    done = fulfil(stores.vault, lambda _: stores, request_id, settings, on=RECEIVED, actor="test", at=AT)
    return request_id, open_sealed(Path(done["package"]).read_bytes(), keyring=stores.vault.keyring)


def expected_facts(stores, files: dict[str, bytes]) -> dict[str, list[str]]:
    """What the report must say, from the data maps, the instruction file and the register."""
    maps = {m.content.store: m.content for m in stores.maps}
    labels, sources, categories = [], [], set()
    for table in json.loads(files["manifest.json"])["tables"]:
        store, name = table["store"], table["table"]
        if store == "vault":
            labels.append(VAULT_LABELS[name])
            categories.add(name)
            sources += [VAULT_SOURCES.get(row["source"], row["source"])
                        for row in json.loads(files[f"data/vault/{name}.json"])]
        elif maps[store].kind == "server_logs":
            logs = maps[store].logs
            assert logs is not None
            labels.append(logs.label or LOG_LABEL)
            sources.append(logs.source or LOG_SOURCE)
            categories.add(logs.instruction)
        else:
            spec = maps[store].tables[name]
            assert spec.label and spec.source, f"the demo's map gives {store}.{name} a label and a source"
            labels.append(table["section"] or spec.label)
            sources.append(spec.source)
            categories |= {spec.instruction, *(rule.instruction for rule in spec.rows if rule.instruction)}
    register = load_register(DEFAULT_RECIPIENTS_FILE).content
    recipients = [r.name for r in register.recipients if r.categories_for(SHOP_CONTROLLER) & categories]
    contact = load_instruction_file(DEFAULT_INSTRUCTIONS_DIR / f"{SHOP_CONTROLLER}.yaml").content.contact
    assert contact and recipients
    return {"labels": labels, "sources": [s for s in sources if s], "recipients": recipients, "contact": [contact]}


def test_the_report_and_its_pdf_tell_the_person_what_article_15_asks_and_nothing_of_anyone_else(stores, tmp_path):
    email = client_in_both()
    truth = shop_truth(email)
    assert truth is not None
    request_id, files = access_package(stores, email, tmp_path)
    manifest = json.loads(files["manifest.json"])
    case = get_request(stores.vault, request_id).case_reference
    assert case and re.fullmatch(r"FENLAND-2026-\d{4}", case) and manifest["case"] == case
    html = re.sub(r"<[^>]+>", " ", files["report.html"].decode()).replace("&#39;", "'").replace("&amp;", "&")
    pdf = pdf_text(files["report.pdf"])
    facts = expected_facts(stores, files)
    [customer] = truth.rows["customers"]
    own = [email, customer["customer_no"], *truth.ips]
    for name, text in (("report.html", html), ("report.pdf", pdf)):
        # The HTML holds each value whole; the PDF's text, read row by row, in order.
        def holds(value: str, name=name, text=text) -> bool:
            return squeezed(value) in squeezed(text) if name == "report.html" else shown(value, text)
        assert holds(case), name
        for kind, values in facts.items():
            missing = [value for value in values if not holds(value)]
            assert not missing, (name, kind, missing)
        assert "Art. 20" in text and "data portability" in text, name
        assert not [value for value in own if not holds(value)], name
        assert "24 November 2026" in text and "2026-11-24" not in text.split("Your data")[0], name
        assert "value(s)" not in text and "was due by" not in text, name
    everything = [html, pdf, *(data.decode() for path, data in files.items() if path != "report.pdf")]
    leaked = [other for other in others_values(email) for text in everything if squeezed(other) in squeezed(text)]
    assert not leaked


def test_portability_is_named_only_where_consent_or_contract_is_the_basis(stores, tmp_path):
    """A person the vault holds only as an enquirer (legitimate interests, no contract yet): no Art. 20."""
    prospect = next(p for p in demo_people()
                    if p.controller_id == SHOP_CONTROLLER and p.fate == "kept: enquiry still open")
    _, files = access_package(stores, prospect.email, tmp_path)
    report = files["report.html"].decode()
    assert prospect.email in report and "Art. 20" not in report


def test_case_references_count_per_controller_and_year_and_old_requests_get_one_once(stores):
    vault = stores.vault
    made = [register_request(vault, controller_id=SHOP_CONTROLLER, kind="access", received_on=day,
                             identities={"email": [f"p{n}@example.org"]}, actor="test", at=AT)
            for n, day in enumerate([date(2026, 1, 5), date(2026, 12, 31), date(2027, 1, 1)])]
    first, second, next_year = (get_request(vault, r).case_reference for r in made)
    assert re.fullmatch(r"FENLAND-2026-\d{4}", first) and next_year == "FENLAND-2027-0001"
    assert int(second.rsplit("-", 1)[1]) == int(first.rsplit("-", 1)[1]) + 1

    # A request registered before references existed gets the next one when first read, and keeps it.
    with vault.engine.begin() as conn:
        conn.execute(case_reference.delete().where(case_reference.c.request_id == made[0]))
    old = get_request(vault, made[0])
    assert old.case_reference is None
    given = with_case_reference(vault, old, actor="test", at=AT).case_reference
    assert given == second[:-4] + f"{int(second[-4:]) + 1:04d}"
    assert with_case_reference(vault, get_request(vault, made[0]), actor="test", at=AT).case_reference == given


def test_the_erasure_confirmations_name_what_was_kept_plainly_in_natural_order(stores, tmp_path):
    email = client_in_both()
    request_id = register_rights_request(stores.vault, controller_id=SHOP_CONTROLLER, kind="erase",
                                         received_on=RECEIVED, identities={"email": [email]}, actor="test", at=AT)
    settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")
    done = fulfil(stores.vault, lambda _: stores, request_id, settings, on=RECEIVED, actor="test", at=AT)
    case = get_request(stores.vault, request_id).case_reference
    summary = json.loads(Path(done["confirmation"]).with_suffix(".json").read_text())
    orders = [k for s in summary["stores"] for k in s["kept"] if k["table"] == "order_lines"]
    assert len(orders) > 1 and [int(k["key"]) for k in orders] == sorted(int(k["key"]) for k in orders)
    for path in (Path(done["confirmation"]), person_confirmation_path(Path(done["confirmation"]))):
        text = re.sub(r"<[^>]+>", " ", path.read_text()).replace("&#39;", "'")
        assert case in text and "Your orders" in text and "The items on your orders" in text, path.name
        assert re.search(r"through \d{1,2} March 20\d\d", text) and "Kept until" not in text, path.name
        assert email not in text, path.name
    person = person_confirmation_path(Path(done["confirmation"])).read_text()
    assert "Your request for erasure" in person and "privacy@fenland-cycles.example" in person

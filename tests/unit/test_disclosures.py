"""Third-party disclosures: the register, the transfer guard, the log and its verification, batch
files, the processor's records (Art. 30(2)), and the recipients in packages and confirmations."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.common.errors import InvalidInput
from include.common.paths import DEFAULT_RECIPIENTS_FILE
from include.common.settings import WorkflowSettings
from include.crypto.sealing import open_sealed
from include.demo.people import demo_people
from include.demo.shop import SHOP_CONTROLLER
from include.duties.disclosures import (
    Disclosure,
    ingest_inbox,
    load_register,
    record_disclosure,
    report_refusals,
    verify_audit_log,
    verify_disclosures,
)
from include.duties.processing_records import processor_records, write_processor_records
from include.policies.instructions import load_instruction_dir
from include.requests.pipeline import RequestSettings, fulfil
from include.requests.register import register_request
from include.requests.rights import register_rights_request
from include.vault.restriction import restrict
from include.vault.schema import audit_event, disclosure
from tests.helpers import client_in_both

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)
REGISTER = load_register(DEFAULT_RECIPIENTS_FILE).content


def court_order(email: str, **changes) -> Disclosure:
    return Disclosure(**{"controller_id": SHOP_CONTROLLER, "recipient_id": "hmcts", "email": email,
                         "categories": ("client", "invoice"), "legal_basis": "legal_obligation",
                         "disclosed_on": date(2026, 11, 20), "reference": "CO/2026/0417",
                         "source": "form:test-1", **changes})


def audit_actions(vault) -> list[str]:
    with vault.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_event.c.action).order_by(audit_event.c.seq)).scalars())


def test_a_register_error_names_the_file_the_line_and_the_field(tmp_path):
    text = DEFAULT_RECIPIENTS_FILE.read_text()
    broken = tmp_path / "recipients.yaml"
    broken.write_text(text.replace("country: IE", "country: Eire"))
    line = text.splitlines().index("    country: IE") + 1
    with pytest.raises(InvalidInput, match=rf"recipients.yaml:{line}: recipients.0.country: 'Eire' is not an ISO "):
        load_register(broken)
    broken.write_text(text.replace("id: xero", "id: microsoft-365"))
    line = text.splitlines().index("  - id: xero") + 1
    with pytest.raises(InvalidInput,
                       match=rf"recipients.yaml:{line}: recipients.1.id: a second recipient 'microsoft-365'"):
        load_register(broken)


def test_a_court_order_is_logged_once_and_audited_with_its_digest(demo_vault, vault):
    email = client_in_both()
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    logged = record_disclosure(vault, REGISTER, court_order(email), actor="test", at=AT)
    again = record_disclosure(vault, REGISTER, court_order(email), actor="test", at=AT)
    assert logged.refusal is None and logged.new and (again.disclosure_id, again.new) == (logged.disclosure_id, False)
    with vault.engine.connect() as conn:
        [row] = conn.execute(sa.select(disclosure)).mappings().all()
    assert (row["subject_id"], row["recipient_id"], row["categories"], row["reference"], row["country"]) == (
        subject, "hmcts", "client,invoice", "CO/2026/0417", "GB")
    assert email not in repr(dict(row)) and row["email_lookup"] == vault.indexer.digest("email", SHOP_CONTROLLER, email)
    assert audit_actions(vault).count("disclosure.recorded") == 1 and verify_disclosures(vault) == []


@pytest.mark.parametrize(("changes", "reason"), [
    ({"recipient_id": "trellis-crm", "controller_id": "jigowatt", "categories": ("contact",)},
     "transfer refused: Trellis CRM Inc. is in US, outside the UK and the EEA, and no adequacy decision or "
     "safeguard"),
    ({"recipient_id": "bt-business", "categories": ("invoice",)},
     "BT Group plc (BT Business) is not registered to receive category 'invoice' from controller 'fenland-cycles'"),
    ({"recipient_id": "xero", "categories": ("shop_order",), "disclosed_on": date(2023, 12, 1)},
     "controller 'fenland-cycles' has no instruction covering category 'shop_order' in effect on 2023-12-01"),
    ({"recipient_id": "mars-bank"}, "recipient 'mars-bank' is not in the register of recipients"),
    ({"legal_basis": "because"}, "legal basis 'because' is not one of consent, contract"),
])
def test_each_refusal_is_audited_with_a_clear_reason(demo_vault, vault, changes, reason):
    person = next(p for p in demo_people() if p.controller_id == changes.get("controller_id", SHOP_CONTROLLER))
    outcome = record_disclosure(vault, REGISTER, court_order(person.email, **changes), actor="test", at=AT)
    assert outcome.disclosure_id is None and reason in outcome.refusal
    assert audit_actions(vault)[-1] == "disclosure.refused"
    with vault.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(disclosure)).scalar_one() == 0


def test_a_transfer_with_a_recorded_safeguard_is_allowed_and_restricted_data_is_not_disclosed(demo_vault, vault):
    email = client_in_both()
    allowed = record_disclosure(vault, REGISTER, court_order(email, recipient_id="mailchimp", categories=("marketing",),
                                                             legal_basis="consent", reference=None,
                                                             source="form:test-2"), actor="test", at=AT)
    assert allowed.refusal is None
    [subject] = vault.find_subjects(SHOP_CONTROLLER, "email", email)
    with vault.engine.begin() as conn:
        restrict(vault, conn, controller_id=SHOP_CONTROLLER, subject_id=subject, grounds="person_asked", actor="test",
                 at=AT)
    refused = record_disclosure(vault, REGISTER, court_order(email, source="form:test-3"), actor="test", at=AT)
    assert "disclosure refused" in refused.refusal and "restricted" in refused.refusal
    assert refused.disclosure_id is None and audit_actions(vault)[-1] == "disclosure.refused"
    with vault.engine.connect() as conn:  # the safeguarded transfer's row alone
        assert conn.execute(sa.select(disclosure.c.id)).scalars().all() == [allowed.disclosure_id]


def test_a_batch_file_dropped_twice_is_logged_once_and_sealed_away(demo_vault, vault, tmp_path):
    people = [p for p in demo_people() if p.controller_id == SHOP_CONTROLLER][:2]
    text = ("controller,recipient,email,categories,legal_basis,disclosed_on,reference\n"
            f"{SHOP_CONTROLLER},xero,{people[0].email},client;invoice,contract,2026-11-02,\n"
            f"{SHOP_CONTROLLER},microsoft-365,{people[1].email},contact,contract,2026-11-03,\n"
            f"jigowatt,trellis-crm,{people[1].email},contact,contract,2026-11-03,\n"
            f"{SHOP_CONTROLLER},xero,{people[0].email},client,contract,3 November,\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "daily-2026-11-03.csv").write_text(text)
    [first] = ingest_inbox(vault, REGISTER, inbox, actor="test", at=AT)
    assert (first.recorded, first.already_logged) == (2, 0)
    reasons = {r.source: r.reason for r in first.refusals}
    assert "transfer refused" in reasons["daily-2026-11-03.csv:4"]
    assert reasons["daily-2026-11-03.csv"] == ("daily-2026-11-03.csv:5: column 'disclosed_on' is not a date written "
                                               "YYYY-MM-DD")  # never the cell's value
    assert not (inbox / "daily-2026-11-03.csv").exists()
    [sealed] = (inbox / "processed").glob("daily-2026-11-03-*.gdprpkg")
    assert open_sealed(sealed.read_bytes(), keyring=vault.keyring) == {"daily-2026-11-03.csv": text.encode()}
    assert people[0].email.encode() not in sealed.read_bytes()

    (inbox / "again.csv").write_text(text)
    [second] = ingest_inbox(vault, REGISTER, inbox, actor="test", at=AT)
    assert (second.recorded, second.already_logged, len(second.refusals)) == (0, 2, 2)
    with vault.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(disclosure)).scalar_one() == 2

    (inbox / "broken.csv").write_text("who,what\nx,y\n")
    with pytest.raises(InvalidInput, match="broken.csv:1: missing column"):
        ingest_inbox(vault, REGISTER, inbox, actor="test", at=AT)
    assert (inbox / "broken.csv").exists()


def test_verification_finds_an_edited_or_deleted_disclosure_and_an_edited_audit_event(demo_vault, vault):
    email = client_in_both()
    first = record_disclosure(vault, REGISTER, court_order(email), actor="test", at=AT).disclosure_id
    second = record_disclosure(vault, REGISTER, court_order(email, source="form:test-2", reference="CO/2026/0500"),
                               actor="test", at=AT).disclosure_id
    with vault.engine.begin() as conn:
        conn.execute(sa.update(disclosure).where(disclosure.c.id == first).values(categories="client"))
        conn.execute(sa.delete(disclosure).where(disclosure.c.id == second))
    problems = verify_disclosures(vault)
    assert any(f"disclosure {first} does not match audit event" in p for p in problems)
    assert any(f"disclosure {second} (audit event" in p and "(deleted)" in p for p in problems)
    with vault.engine.begin() as conn:
        seq = conn.execute(sa.select(audit_event.c.seq).where(audit_event.c.action == "disclosure.recorded")
                           .order_by(audit_event.c.seq)).scalars().first()
        conn.execute(sa.update(audit_event).where(audit_event.c.seq == seq).values(
            details=json.dumps({"disclosure": first, "recipient": "xero"})))
    with vault.engine.connect() as conn:
        assert any(f"event {seq}: content does not match" in p for p in vault.audit.verify(conn).problems)


def test_a_disclosure_never_audited_is_reported(demo_vault, vault):
    logged = record_disclosure(vault, REGISTER, court_order(client_in_both()), actor="test", at=AT).disclosure_id
    with vault.engine.begin() as conn:  # a row written behind the log's back: a copy under another id
        row = conn.execute(sa.select(disclosure).where(disclosure.c.id == logged)).mappings().one()
        conn.execute(sa.insert(disclosure).values({**row, "id": "f" * 32, "source": "form:never-audited"}))
    assert verify_disclosures(vault) == [f"disclosure {'f' * 32} has no event in the verified audit chain (inserted "
                                         "after the fact, or its event forged, moved out of the chain or edited)"]


def test_a_deleted_audit_event_of_a_disclosure_is_reported(demo_vault, vault):
    logged = record_disclosure(vault, REGISTER, court_order(client_in_both()), actor="test", at=AT).disclosure_id
    later = record_disclosure(vault, REGISTER, court_order(client_in_both(), source="form:test-2",
                                                           reference="CO/2026/0500"), actor="test", at=AT).disclosure_id
    with vault.engine.begin() as conn:
        seq = conn.execute(sa.select(audit_event.c.seq).where(audit_event.c.action == "disclosure.recorded")
                           .order_by(audit_event.c.seq)).scalars().first()
        conn.execute(sa.delete(audit_event).where(audit_event.c.seq == seq))
    chain, problems = verify_audit_log(vault)
    assert f"event {seq} is missing (deleted)" in chain.problems
    # The later disclosure's event no longer follows an event of the chain: it vouches for nothing either.
    assert problems == [f"disclosure {d} has no event in the verified audit chain (inserted after the fact, or its "
                        "event forged, moved out of the chain or edited)" for d in sorted((logged, later))]


def test_the_processor_records_list_categories_recipients_transfers_and_safeguards(demo_vault, vault, tmp_path):
    record_disclosure(vault, REGISTER, court_order(client_in_both()), actor="test", at=AT)
    record_disclosure(vault, REGISTER, court_order(client_in_both(), recipient_id="trellis-crm", source="form:t2"),
                      actor="test", at=AT)
    files = load_instruction_dir(WorkflowSettings().instructions_dir)
    records = processor_records(vault, REGISTER, files, controller_id=SHOP_CONTROLLER, period_start=date(2026, 11, 1),
                                as_of=date(2026, 11, 30))
    paths = write_processor_records(tmp_path, records)
    rows = list(csv.DictReader(io.StringIO(Path(paths["csv"]).read_text())))

    def section(name):
        return [r for r in rows if r["section"] == name]
    assert section("processor")[0]["name"] == "Jigowatt Ltd (the agency)"
    assert section("controller")[0]["name"] == "Fenland Cycles Ltd"
    assert section("controller")[0]["detail"].startswith("Managing Director, Fenland Cycles Ltd")
    # Fenland Cycles' instructions in effect on 30 November 2026 (include/config/instructions): server
    # logs kept 30 days since 1 June 2026, no longer 90.
    assert {r["name"]: (r["purpose"], r["legal_basis"], r["retention"]) for r in section("processing")} == {
        "enquiry": ("answering the enquiry", "legitimate_interests", "until the enquiry is closed"),
        "quote": ("preparing a quotation", "contract", "until the enquiry is closed"),
        "client": ("supplying the ordered goods or services", "contract", "6 years after the contract ends"),
        "invoice": ("accounting and tax (HMRC)", "legal_obligation", "7 years from the end of the financial year"),
        "contact": ("managing the client relationship", "legitimate_interests", "6 years after the contract ends"),
        "shop_account": ("running customers' accounts in the web shop", "contract", "6 years after the contract ends"),
        "shop_order": ("supplying and accounting for web-shop orders", "legal_obligation",
                       "7 years from the end of the financial year"),
        "shop_order_note": ("delivering web-shop orders as the customer asked", "contract",
                            "6 years after the contract ends"),
        "marketing": ("sending the shop's newsletter to those who signed up for it", "consent",
                      "2 years from collection"),
        "server_log": ("securing and diagnosing the website", "legitimate_interests", "30 days from collection"),
    }
    recipients = {r["name"]: r for r in section("recipient")}
    assert set(recipients) == {"Microsoft Ireland Operations Ltd", "Xero (UK) Ltd", "BT Group plc (BT Business)",
                               "The Rocket Science Group LLC (Intuit Mailchimp)",
                               "HM Courts & Tribunals Service (courts of England and Wales)", "HM Revenue & Customs"}
    hmcts = recipients["HM Courts & Tribunals Service (courts of England and Wales)"]
    assert (hmcts["kind"], hmcts["country"], hmcts["disclosures"]) == ("court", "GB", "1")
    assert recipients["Xero (UK) Ltd"]["categories"] == "client;invoice;shop_order"
    [transfer] = section("transfer")
    assert (transfer["name"], transfer["country"], transfer["safeguard"], transfer["detail"]) == (
        "The Rocket Science Group LLC (Intuit Mailchimp)", "US", "idta", "allowed under the safeguard")
    assert transfer["safeguard_reference"].startswith("ICO International Data Transfer Addendum")
    assert len(section("security")) == len(REGISTER.security_measures)
    assert section("refusals")[0]["detail"] == "1"  # trellis-crm: not registered for the shop's controller
    html = Path(paths["html"]).read_text()
    assert "Transfers outside the UK and the EEA" in html and "idta" in html


def test_a_disclosure_appears_in_the_access_package_and_the_erasure_confirmation(stores, tmp_path):
    vault, email = stores.vault, client_in_both()
    record_disclosure(vault, REGISTER, court_order(email), actor="test", at=AT)
    settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")
    access = register_request(vault, controller_id=SHOP_CONTROLLER, kind="access", received_on=AT.date(),
                              identities={"email": [email]}, actor="test", at=AT)
    delivered = fulfil(vault, lambda _: stores, access, settings, on=AT.date(), actor="test", at=AT)
    files = open_sealed(Path(delivered["package"]).read_bytes(), keyring=vault.keyring)
    [told] = json.loads(files["data/disclosures.json"])
    assert (told["recipient"], told["reference"], told["categories"]) == (
        "HM Courts & Tribunals Service (courts of England and Wales)", "CO/2026/0417", "client, invoice")
    assert "CO/2026/0417" in files["report.html"].decode()

    erase = register_rights_request(vault, controller_id=SHOP_CONTROLLER, kind="erase", received_on=AT.date(),
                                    identities={"email": [email]}, actor="test", at=AT)
    confirmed = fulfil(vault, lambda _: stores, erase, settings, on=AT.date(), actor="test", at=AT)
    summary = json.loads(Path(confirmed["confirmation"]).with_suffix(".json").read_text())
    assert [r["recipient"] for r in summary["recipients"]] == [
        "HM Courts & Tribunals Service (courts of England and Wales)"]


# -- tampering with the disclosure log, as `gdpr-admin audit verify` sees it --------------------------------------


def plain_digest(row: dict) -> str:
    """An unkeyed digest of a disclosure row, as anyone who can read the row can compute it."""
    canonical = json.dumps({k: (v.isoformat() if isinstance(v, date | datetime) else v)
                            for k, v in sorted(row.items()) if k != "recorded_at"}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def forge_event(conn, seq: int, like: dict, **details) -> None:
    """An audit event outside the chain, copied from a real one, with its details changed."""
    conn.execute(sa.insert(audit_event).values({**like, "seq": seq,
                                                "details": json.dumps({**json.loads(like["details"]), **details})}))


@pytest.mark.parametrize("edit", ["digest forged outside the chain", "recorded_at backdated"])
def test_the_cli_reports_an_edited_disclosure(demo_vault, vault, audit_verify, edit):
    logged = record_disclosure(vault, REGISTER, court_order(client_in_both()), actor="test", at=AT).disclosure_id
    assert audit_verify()[0] == 0
    with vault.engine.begin() as conn:
        if edit == "recorded_at backdated":
            conn.execute(sa.update(disclosure).where(disclosure.c.id == logged).values(
                recorded_at=AT - timedelta(days=40)))
        else:
            conn.execute(sa.update(disclosure).where(disclosure.c.id == logged).values(categories="client"))
            row = conn.execute(sa.select(disclosure).where(disclosure.c.id == logged)).mappings().one()
            real = conn.execute(sa.select(audit_event).where(audit_event.c.action == "disclosure.recorded")).one()
            forge_event(conn, -1, real._asdict(), digest=plain_digest(dict(row)))
    status, printed = audit_verify()
    assert status == 1 and f"disclosure {logged} does not match audit event" in printed


def test_a_digest_from_an_event_outside_the_verified_chain_is_not_trusted(demo_vault, vault):
    email = client_in_both()
    genuine = record_disclosure(vault, REGISTER, court_order(email), actor="test", at=AT).disclosure_id
    moved = record_disclosure(vault, REGISTER, court_order(email, source="form:test-2"), actor="test",
                              at=AT).disclosure_id
    made_up = "f" * 32
    with vault.engine.begin() as conn:
        # A genuine event moved out of the chain: its digest is right, but it is no longer in the chain.
        conn.execute(sa.update(audit_event).where(audit_event.c.details.contains(moved)).values(seq=-5))
        # A disclosure that was never made, with an event outside the chain carrying its row's digest.
        row = dict(conn.execute(sa.select(disclosure).where(disclosure.c.id == genuine)).mappings().one())
        row.update(id=made_up, source="form:made-up", reference="CO/2026/9999")
        conn.execute(sa.insert(disclosure).values(row))
        real = conn.execute(sa.select(audit_event).where(audit_event.c.details.contains(genuine))).one()._asdict()
        forge_event(conn, -6, real, disclosure=made_up, digest=plain_digest(row))
    problems = verify_disclosures(vault)
    assert any(f"disclosure {moved} " in p for p in problems)
    assert any(f"disclosure {made_up} " in p for p in problems)
    assert not any(f"disclosure {genuine} " in p for p in problems)


def test_a_disclosure_audited_before_digests_were_keyed_still_verifies(demo_vault, vault):
    logged = record_disclosure(vault, REGISTER, court_order(client_in_both()), actor="test", at=AT).disclosure_id
    with vault.engine.begin() as conn:  # one logged as before: its event, in the chain, holds a plain digest
        row = dict(conn.execute(sa.select(disclosure).where(disclosure.c.id == logged)).mappings().one())
        row.update(id="e" * 32, source="form:before-keyed-digests")
        conn.execute(sa.insert(disclosure).values(row))
        vault.audit.append(conn, at=AT, actor="test", action="disclosure.recorded", controller_id=SHOP_CONTROLLER,
                           details={"disclosure": row["id"], "recipient": "hmcts", "country": "GB",
                                    "reference": row["reference"], "digest": plain_digest(row)})
    assert verify_disclosures(vault) == []
    with vault.engine.begin() as conn:
        conn.execute(sa.update(disclosure).where(disclosure.c.id == row["id"]).values(categories="client"))
    assert verify_disclosures(vault) == [
        f"disclosure {row['id']} does not match audit event {audit_seq(vault, row['id'])} (edited)"]


def audit_seq(vault, disclosure_id: str) -> int:
    with vault.engine.connect() as conn:
        return conn.execute(sa.select(audit_event.c.seq)
                            .where(audit_event.c.details.contains(disclosure_id))).scalar_one()


# -- batch files: a controller id is never a path, a cell's value is never in a report -----------------------------


HEADER = "controller,recipient,email,categories,legal_basis,disclosed_on,reference\n"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_an_unregistered_controller_in_a_batch_is_refused_and_no_path_is_built_from_it(demo_vault, vault, tmp_path):
    email = client_in_both()
    elsewhere = tmp_path / "elsewhere"
    inbox, outbox = tmp_path / "inbox", tmp_path / "a" / "b" / "c" / "outbox"
    inbox.mkdir()
    (inbox / "batch.csv").write_text(HEADER + "".join(
        f"{controller},xero,{email},client,contract,2026-11-02,\n"
        for controller in ("../../../x", "..", str(elsewhere), "nobody")))
    [outcome] = ingest_inbox(vault, REGISTER, inbox, actor="test", at=AT)
    before = files_under(tmp_path)
    written = report_refusals(outbox, outcome.refusals, at=AT)
    assert {p.resolve() for p in files_under(tmp_path) - before} <= {p.resolve() for p in files_under(outbox)}
    assert not elsewhere.exists() and not (tmp_path / "a" / "x").exists()
    assert written and all(p.resolve().is_relative_to((outbox / "_unassigned").resolve()) for p in written)
    assert outcome.recorded == 0 and len(outcome.refusals) == 4
    for refusal in outcome.refusals:
        assert refusal.controller_id is None
        assert "column 'controller': not a controller registered in the vault" in refusal.reason
    with vault.engine.connect() as conn:
        controllers = conn.execute(sa.select(audit_event.c.controller_id)
                                   .where(audit_event.c.action == "disclosure.refused")).scalars().all()
    assert set(controllers) <= {None}


def test_refusal_reports_and_errors_never_hold_a_cells_value(demo_vault, vault, tmp_path):
    email = client_in_both()
    values = {"disclosed_on": "Jane Doe 12 Acacia Ave", "recipient": "Joe Bloggs", "controller": "Ann Other",
              "categories": "Mary Smith", "legal_basis": "Bob Jones", "reference": "Sam Brown 4 Elm St",
              "email": "Kim Green 9 Oak Rd", "extra": "Lee White 7 Ash Way"}
    good = {"controller": SHOP_CONTROLLER, "recipient": "xero", "email": email, "categories": "client",
            "legal_basis": "contract", "disclosed_on": "2026-11-02", "reference": ""}
    columns = list(good)
    lines = [",".join(values[c] if c == column else good[c] for c in columns) for column in columns]
    lines.append(",".join(good.values()) + f",{values['extra']}")  # a field more than the header has
    lines.append(f"{SHOP_CONTROLLER},{values['categories']}")  # a short row
    inbox, headless, outbox = tmp_path / "inbox", tmp_path / "headless", tmp_path / "outbox"
    inbox.mkdir()
    headless.mkdir()
    (inbox / "batch.csv").write_text(HEADER + "\n".join(lines) + "\n")
    (headless / "no-header.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput) as unreadable:
        ingest_inbox(vault, REGISTER, headless, actor="test", at=AT)
    assert "no-header.csv:1: missing column" in str(unreadable.value)
    [outcome] = ingest_inbox(vault, REGISTER, inbox, actor="test", at=AT)
    assert outcome.recorded == 0 and len(outcome.refusals) == len(lines)
    reasons = " | ".join(r.reason for r in outcome.refusals)
    for column in ("disclosed_on", "recipient", "controller", "categories", "legal_basis", "reference"):
        assert f"column '{column}'" in reasons
    assert "email is not a valid address" in reasons and "more field(s) than the header" in reasons
    written = report_refusals(outbox, outcome.refusals, at=AT)
    with vault.engine.connect() as conn:
        audited = conn.execute(sa.select(audit_event.c.details)).scalars().all()
    told = [str(unreadable.value), reasons, repr(outcome.refusals), *audited,
            *(p.read_text() for p in written)]
    for value in values.values():
        for word in value.split():
            if len(word) > 2 and not word.isdigit():
                assert not any(word in text for text in told), f"{word!r} from a cell was copied"

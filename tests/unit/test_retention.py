"""Retention with fixed dates (none depends on today): instructions, the sweep, holds, the report."""

from datetime import UTC, date, datetime, timedelta

import pytest

from include.common.errors import InvalidInput
from include.common.settings import WorkflowSettings
from include.duties.retention import retention_report, sweep_expired, write_retention_reports
from include.policies.instructions import (
    instructions_in_code,
    load_instruction_dir,
    load_instruction_file,
)
from include.policies.rules import FinancialYearEnd, RetentionRule
from include.requests.register import close_request, register_request
from include.vault.holds import lift_hold, place_hold
from include.vault.instructions import record_instructions
from include.vault.restriction import restrict, restricted_subjects
from include.vault.store import NewRecord
from tests.helpers import instruct

SEVEN_YEARS = "7 years from the end of the financial year"
LAST_KEPT = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
FIRST_GONE = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def invoice(relates_to: date, email: str = "ada@example.com") -> NewRecord:
    return NewRecord(controller_id="acme", category="invoice", purpose="accounting", source="ledger",
                     role="client", relates_to=relates_to,
                     created_at=datetime.combine(relates_to, datetime.min.time(), UTC),
                     fields={"email": email, "amount_gbp": "120.00"})


ACME = {"name": "Acme Ltd", "region": "england-and-wales"}


@pytest.fixture
def acme(vault):
    vault.add_controller("acme", actor="test", **ACME)
    instruct(vault, "acme", {"invoice": SEVEN_YEARS, "contact": "6 years from collection"})
    return vault


def sweep(vault, as_of, **kwargs):
    return sweep_expired(vault, controller_id="acme", as_of=as_of, actor="test", **kwargs)


def test_the_seven_year_rule_by_the_day():
    rule = RetentionRule.parse("7 Years  from the end of the financial year")
    march = FinancialYearEnd()
    assert rule.end_for(date(2018, 6, 15), march) == FIRST_GONE  # FY ending 31 March 2019
    assert rule.end_for(date(2019, 3, 31), march) == FIRST_GONE
    assert rule.end_for(date(2019, 4, 1), march) == FIRST_GONE.replace(year=2027)
    assert rule.last_expired_day(LAST_KEPT, march) == date(2018, 3, 31)
    assert rule.last_expired_day(FIRST_GONE, march) == date(2019, 3, 31)
    calendar = FinancialYearEnd.parse("12-31")
    assert rule.end_for(date(2018, 6, 15), calendar) == datetime(2026, 1, 1, tzinfo=UTC)
    assert RetentionRule.parse("30 days from collection").end_for(date(2026, 1, 31), march) == \
        datetime(2026, 3, 3, tzinfo=UTC)
    assert not RetentionRule.parse("until the enquiry is closed").scheduled


@pytest.mark.parametrize("text, message", [
    ("forever", "is not '<number>"),
    ("7 years from the moon landing", "'the moon landing' is not one of"),
    ("", "must be text"),
    ("7 fortnights from collection", "is not '<number>"),
])
def test_bad_rules_say_what_is_accepted(text, message):
    with pytest.raises(InvalidInput, match=message):
        RetentionRule.parse(text)


def test_a_record_of_fy_2019_is_kept_on_31_march_2026_and_deleted_on_1_april(acme):
    (rid,) = acme.add_records([invoice(date(2018, 6, 15))], actor="test")
    assert acme.read_record(rid).retention_end == FIRST_GONE  # set from the instruction
    subject = acme.read_record(rid).subject_id
    kept = sweep(acme, LAST_KEPT)
    assert kept.deleted == 0 and acme.counts()["records"] == 1
    gone = sweep(acme, FIRST_GONE)
    assert (gone.deleted, gone.outcomes[0].subjects_erased) == (1, 1)
    assert acme.counts() == {"records": 0, "live_subjects": 0, "data_keys": 0}
    assert acme.keystore.fetch([subject]) == {}
    assert sweep(acme, FIRST_GONE + timedelta(days=1)).deleted == 0  # a second run changes nothing


def test_a_legal_hold_keeps_the_record_past_its_end_until_lifted_or_ended(acme):
    held_id, other = acme.add_records([invoice(date(2018, 6, 15)), invoice(date(2018, 7, 1), "bo@example.com")],
                                      actor="test")
    hold = place_hold(acme, controller_id="acme", record_ids=[held_id], reason="HMRC enquiry",
                      actor="test", at=datetime(2025, 1, 1, tzinfo=UTC))
    report = sweep(acme, FIRST_GONE)
    assert (report.deleted, report.outcomes[0].kept_by_legal_hold) == (1, 1)
    assert acme.read_record(held_id).fields["amount_gbp"] == "120.00"
    assert sweep(acme, datetime(2030, 1, 1, tzinfo=UTC)).deleted == 0  # no end: held for good
    lift_hold(acme, hold, actor="test", at=datetime(2030, 6, 1, tzinfo=UTC))
    assert sweep(acme, datetime(2030, 6, 2, tzinfo=UTC)).deleted == 1

    (timed,) = acme.add_records([invoice(date(2018, 6, 15), "cy@example.com")], actor="test")
    subject = acme.read_record(timed).subject_id
    place_hold(acme, controller_id="acme", subject_id=subject, reason="claim", actor="test",
               at=datetime(2026, 1, 1, tzinfo=UTC), ends_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert sweep(acme, datetime(2026, 12, 31, tzinfo=UTC)).deleted == 0
    assert sweep(acme, datetime(2027, 1, 1, tzinfo=UTC)).deleted == 1  # the later of the two ends


def test_a_controller_wide_hold_and_an_open_request_hold_off_the_sweep(acme):
    rid, = acme.add_records([invoice(date(2018, 6, 15))], actor="test")
    subject = acme.read_record(rid).subject_id
    request = register_request(acme, controller_id="acme", subject_id=subject, kind="access",
                               received_on=date(2026, 3, 30), actor="test", at=LAST_KEPT)
    report = sweep(acme, FIRST_GONE)
    assert (report.deleted, report.outcomes[0].kept_by_open_request) == (0, 1)
    close_request(acme, request, status="completed", actor="test", at=FIRST_GONE)
    hold = place_hold(acme, controller_id="acme", reason="litigation", actor="test", at=FIRST_GONE)
    assert sweep(acme, FIRST_GONE + timedelta(hours=1)).deleted == 0
    lift_hold(acme, hold, actor="test", at=FIRST_GONE + timedelta(hours=2))
    assert sweep(acme, FIRST_GONE + timedelta(hours=3)).deleted == 1


def test_a_restriction_does_not_stop_deletion_at_the_end_of_the_retention_period(acme):
    rid, = acme.add_records([invoice(date(2018, 6, 15))], actor="test")
    subject = acme.read_record(rid).subject_id
    with acme.engine.begin() as conn:
        restrict(acme, conn, controller_id="acme", subject_id=subject, grounds="person_asked", actor="test",
                 at=LAST_KEPT)
    assert subject in restricted_subjects(acme, [subject])
    report = sweep(acme, FIRST_GONE)
    assert (report.deleted, report.outcomes[0].subjects_erased) == (1, 1)
    assert acme.counts()["records"] == 0 and acme.keystore.fetch([subject]) == {}


def test_a_shortened_period_applies_from_the_next_run_and_stays_in_the_history(acme):
    contact = NewRecord(controller_id="acme", category="contact", purpose="account management",
                        source="crm", role="contact", created_at=datetime(2023, 1, 10, tzinfo=UTC),
                        fields={"email": "dee@example.com", "name": "Dee"})
    acme.add_records([contact], actor="test")
    assert sweep(acme, datetime(2026, 4, 30, tzinfo=UTC)).deleted == 0  # 6 years: until 2029
    record_instructions(acme, [instructions_in_code("acme", {"contact": "2 years from collection"},
                                                    given_on=date(2026, 5, 1), **ACME)],
                        actor="test", at=datetime(2026, 4, 30, 12, tzinfo=UTC))
    assert sweep(acme, datetime(2026, 4, 30, 18, tzinfo=UTC)).deleted == 0  # not yet in effect
    report = sweep(acme, datetime(2026, 5, 1, 2, tzinfo=UTC))
    assert (report.deleted, report.outcomes[0].rule, report.outcomes[0].given_on) == \
        (1, "2 years from collection", "2026-05-01")
    history = acme.instruction_book().history("acme", "contact")
    assert [(i.given_on, i.retention.text) for i in history] == [
        (date(2024, 1, 1), "6 years from collection"), (date(2026, 5, 1), "2 years from collection")]


def test_recorded_history_cannot_be_rewritten(acme):
    changed = instructions_in_code("acme", {"invoice": "6 years from the end of the financial year"},
                                   given_on=date(2024, 1, 1), **ACME)
    with pytest.raises(InvalidInput, match="differs from the one recorded.*later given_on"):
        record_instructions(acme, [changed], actor="test", at=FIRST_GONE)
    same = instructions_in_code("acme", {"invoice": SEVEN_YEARS}, given_on=date(2024, 1, 1), **ACME)
    assert record_instructions(acme, [same], actor="test", at=FIRST_GONE).unchanged == 1


def test_processing_a_category_without_an_instruction_is_refused(acme):
    stray = NewRecord(controller_id="acme", category="marketing", purpose="newsletter", source="web",
                      fields={"email": "ed@example.com"})
    with pytest.raises(InvalidInput, match="record #0: controller 'acme' has no instruction covering "
                                           "category 'marketing'.*refused"):
        acme.add_records([stray], actor="test")
    assert acme.counts()["records"] == 0


def test_dry_run_reports_exactly_and_deletes_nothing_in_batches(acme):
    acme.add_records([invoice(date(2018, 6, 15), f"p{i}@example.com") for i in range(23)], actor="test")
    dry = sweep(acme, FIRST_GONE, dry_run=True, batch_size=5)
    assert (dry.deleted, dry.batches, acme.counts()["records"]) == (23, 5, 23)
    real = sweep(acme, FIRST_GONE, batch_size=5)
    assert (real.deleted, real.batches, acme.counts()["records"]) == (23, 5, 0)


def test_the_retention_report_gives_rule_count_oldest_and_next_expiry(acme, tmp_path):
    acme.add_records([invoice(date(2018, 6, 15)), invoice(date(2019, 6, 15), "b@example.com"),
                      invoice(date(2019, 7, 15), "c@example.com")], actor="test")
    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    (line,) = retention_report(acme, as_of=as_of)
    assert (line.controller_id, line.category, line.rule, line.records) == ("acme", "invoice", SEVEN_YEARS, 3)
    assert line.oldest == datetime(2018, 6, 15, tzinfo=UTC)
    assert line.next_expiry == date(2026, 4, 1)
    assert [(c.expires_on, c.records) for c in line.cohorts] == [(date(2026, 4, 1), 1), (date(2027, 4, 1), 2)]
    paths = write_retention_reports(tmp_path, as_of=as_of, dry_run=False,
                                    sweeps=[sweep(acme, as_of)], lines=[line])
    html = (tmp_path / "retention.html").read_text()
    assert SEVEN_YEARS in html and "2027-04-01: 2" in html
    assert "acme,invoice" in (tmp_path / "retained.csv").read_text()
    assert set(paths) == {"json", "deletions_csv", "retained_csv", "html"}


# -- instruction files ----------------------------------------------------------------------------

GOOD = """\
controller: acme
name: Acme Ltd
region: england-and-wales
financial_year_end: "03-31"
instructions:
  - category: invoice
    purpose: accounting and tax
    legal_basis: legal_obligation
    retention: 7 years from the end of the financial year
    given_by: Finance Director
    given_on: 2024-01-08
"""


@pytest.mark.parametrize("change, line, message", [
    (("    given_by: Finance Director\n", ""), 6, r"instructions\.0\.given_by: Field required"),
    (("given_on: 2024-01-08", "given_on: someday"), 11, r"instructions\.0\.given_on: Input should be a valid date"),
    (("legal_basis: legal_obligation", "legal_basis: because"), 8, r"instructions\.0\.legal_basis: Input should be"),
    (("retention: 7 years", "retention: 7 aeons"), 9, r"instructions\.0\.retention: retention rule"),
    (('"03-31"', '"02-30"'), 4, r"financial_year_end: financial_year_end '02-30' is not a day"),
    (("controller: acme", "controller: acme\ncolour: blue"), 2, r"colour: Extra inputs are not permitted"),
    (("  - category: invoice", "  - category: 42"), 6, r"instructions\.0\.category: Input should be a valid string"),
    (("instructions:\n", "instructions: []\nx:\n"), 5, r"instructions: List should have at least 1 item"),
    (("    given_on: 2024-01-08\n", "    given_on: 2024-01-08\n    [oops\n"), 12, r"not valid YAML"),
])
def test_instruction_file_errors_name_the_file_line_and_field(tmp_path, change, line, message):
    path = tmp_path / "acme.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(InvalidInput, match=rf"^{path}:{line}: .*{message}"):
        load_instruction_file(path)


def test_a_duplicate_and_a_log_action_out_of_place_are_refused(tmp_path):
    path = tmp_path / "acme.yaml"
    path.write_text(GOOD + GOOD.split("instructions:\n")[1])
    with pytest.raises(InvalidInput, match="a second instruction for 'invoice' given on 2024-01-08"):
        load_instruction_file(path)
    path.write_text(GOOD + "    log_action: drop\n")
    with pytest.raises(InvalidInput, match=rf"{path}:6: instructions\.0: .*log_action"):
        load_instruction_file(path)
    (tmp_path / "other.yaml").write_text(GOOD)
    path.write_text(GOOD)
    with pytest.raises(InvalidInput, match="controller 'acme' is already described by"):
        load_instruction_dir(tmp_path)


def test_the_shipped_demo_instructions_load():
    files = {f.content.controller: f for f in load_instruction_dir(WorkflowSettings().instructions_dir)}
    demo = {"jigowatt", "fenland-cycles", "glencoe-outdoor", "lagan-bakery"}
    assert demo <= set(files)  # beside other controllers' files, such as oak-home's
    for loaded in (files[controller_id] for controller_id in sorted(demo)):
        categories = {i.category for i in loaded.content.instructions}
        assert {"enquiry", "quote", "client", "invoice", "contact", "server_log"} <= categories
        assert loaded.content.server_logs

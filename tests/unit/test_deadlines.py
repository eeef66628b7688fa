"""Due dates of requests by the UK rules: month ends, leap years, weekends, each region's bank holidays."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from include.common.errors import InvalidInput
from include.requests.deadlines import SUBDIVISIONS, clock_start, due_date, is_working_day

EW, SCO, NI = "england-and-wales", "scotland", "northern-ireland"


@pytest.mark.parametrize(("received", "due"), [
    (date(2026, 9, 3), date(2026, 10, 5)),    # 3 October 2026 is a Saturday
    (date(2026, 6, 10), date(2026, 7, 10)),   # the corresponding day, a Friday
    (date(2023, 1, 31), date(2023, 2, 28)),   # no 31 February: the month's last day
    (date(2024, 1, 31), date(2024, 2, 29)),   # ... which is the 29th in a leap year
    (date(2024, 1, 29), date(2024, 2, 29)),
    (date(2025, 1, 30), date(2025, 2, 28)),
    (date(2025, 8, 31), date(2025, 9, 30)),
    (date(2026, 3, 31), date(2026, 4, 30)),
    (date(2024, 2, 29), date(2024, 4, 2)),    # 29 March 2024 is Good Friday, then a weekend, then Easter Monday
    (date(2026, 11, 25), date(2026, 12, 29)),  # Christmas Day, a weekend, Boxing Day observed
    (date(2026, 12, 31), date(2027, 2, 1)),   # 31 January 2027 is a Sunday
])
def test_due_dates_in_england_and_wales(received, due):
    assert due_date(received, EW) == due


@pytest.mark.parametrize(("received", "by_region"), [
    # St Andrew's Day, Monday 30 November 2026: a bank holiday in Scotland only
    (date(2026, 10, 30), {EW: date(2026, 11, 30), SCO: date(2026, 12, 1), NI: date(2026, 11, 30)}),
    # 2 January is a bank holiday in Scotland only
    (date(2024, 12, 2), {EW: date(2025, 1, 2), SCO: date(2025, 1, 3), NI: date(2025, 1, 2)}),
    # St Patrick's Day, Tuesday 17 March 2026: Northern Ireland only
    (date(2026, 2, 17), {EW: date(2026, 3, 17), SCO: date(2026, 3, 17), NI: date(2026, 3, 18)}),
    # Easter Monday, 6 April 2026: not a bank holiday in Scotland
    (date(2026, 3, 6), {EW: date(2026, 4, 7), SCO: date(2026, 4, 6), NI: date(2026, 4, 7)}),
    # The summer bank holiday: 3 August 2026 in Scotland, 31 August elsewhere
    (date(2026, 7, 3), {EW: date(2026, 8, 3), SCO: date(2026, 8, 4), NI: date(2026, 8, 3)}),
    (date(2026, 7, 31), {EW: date(2026, 9, 1), SCO: date(2026, 8, 31), NI: date(2026, 9, 1)}),
    # The Battle of the Boyne, Monday 13 July 2026 (12 July is a Sunday): Northern Ireland only
    (date(2026, 6, 13), {EW: date(2026, 7, 13), SCO: date(2026, 7, 13), NI: date(2026, 7, 14)}),
    # 29 March 2024 Good Friday everywhere; Easter Monday not in Scotland
    (date(2024, 2, 29), {EW: date(2024, 4, 2), SCO: date(2024, 4, 1), NI: date(2024, 4, 2)}),
])
def test_each_regions_bank_holidays_move_the_due_date(received, by_region):
    assert {region: due_date(received, region) for region in by_region} == by_region


def test_the_clock_starts_with_the_last_of_request_identity_and_fee():
    assert clock_start(date(2026, 3, 2)) == date(2026, 3, 2)
    assert clock_start(date(2026, 3, 2), identity_verified_on=date(2026, 3, 9)) == date(2026, 3, 9)
    assert clock_start(date(2026, 3, 2), identity_verified_on=date(2026, 3, 9),
                       fee_received_on=date(2026, 3, 12)) == date(2026, 3, 12)
    assert clock_start(date(2026, 3, 2), fee_received_on=date(2026, 3, 1)) == date(2026, 3, 2)


def test_an_extension_adds_up_to_two_months_and_a_pause_its_days():
    assert due_date(date(2024, 1, 31), EW, extension_months=2) == date(2024, 4, 30)
    assert due_date(date(2024, 11, 30), EW, extension_months=2) == date(2025, 2, 28)
    assert due_date(date(2026, 6, 1), EW, paused_days=5) == date(2026, 7, 6)
    assert due_date(date(2026, 6, 1), EW, paused_days=4) == date(2026, 7, 6)  # Sunday 5 July
    with pytest.raises(InvalidInput, match="0 to 2 further months, not 3"):
        due_date(date(2026, 6, 1), EW, extension_months=3)
    with pytest.raises(InvalidInput, match="region 'wales' is not one of"):
        due_date(date(2026, 6, 1), "wales")


# Hypothesis's 200 ms deadline is off: the first example builds a region's bank holidays (376 ms once),
# and a busy 2-core machine can stretch any example past it.
@settings(deadline=None)
@given(st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.sampled_from(sorted(SUBDIVISIONS)),
       st.integers(0, 2), st.integers(0, 60))
def test_a_due_date_is_the_first_working_day_on_or_after_the_months_and_paused_days(start, region, extension,
                                                                                   paused):
    due = due_date(start, region, extension_months=extension, paused_days=paused)
    unrolled = start + relativedelta(months=1 + extension) + timedelta(days=paused)
    assert is_working_day(due, region)
    assert unrolled <= due < unrolled + timedelta(days=10)
    assert not any(is_working_day(unrolled + timedelta(days=n), region) for n in range((due - unrolled).days))

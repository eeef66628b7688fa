"""When a data subject's request must be answered, by the UK rules (Art. 12(3); ICO guidance).

- The clock starts at the latest of: the request's receipt, the identity evidence asked for, the
  fee where one may be charged. That day is day one.
- The response is due on the corresponding day of the next month, or that month's last day when it
  has no such day (31 January gives 28 or 29 February).
- An extension for complex or numerous requests adds up to two further months, counted the same
  way from the clock's start.
- Days on which the clock was paused (waiting for a clarification) do not count: the due date moves
  on by as many days.
- A due date on a weekend or a bank holiday of the controller's region moves to the next working day.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import holidays
from dateutil.relativedelta import relativedelta

from include.common.errors import InvalidInput

# The controller's region (see vault.store.REGIONS) as the `holidays` package's UK subdivision.
SUBDIVISIONS = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR"}
MAX_EXTENSION_MONTHS = 2


@functools.cache
def bank_holidays(region: str) -> holidays.HolidayBase:
    try:
        subdivision = SUBDIVISIONS[region]
    except KeyError:
        raise InvalidInput(f"region '{region}' is not one of {', '.join(SUBDIVISIONS)}") from None
    return holidays.country_holidays("GB", subdiv=subdivision)


def is_working_day(day: date, region: str) -> bool:
    return day.weekday() < 5 and day not in bank_holidays(region)


def next_working_day(day: date, region: str) -> date:
    """The day itself if it is a working day in the region, else the next one that is."""
    while not is_working_day(day, region):
        day += timedelta(days=1)
    return day


def clock_start(received_on: date, *, identity_verified_on: date | None = None,
                fee_received_on: date | None = None) -> date:
    return max(d for d in (received_on, identity_verified_on, fee_received_on) if d is not None)


def due_date(start: date, region: str, *, extension_months: int = 0, paused_days: int = 0) -> date:
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise InvalidInput(f"an extension is 0 to {MAX_EXTENSION_MONTHS} further months, not {extension_months}")
    if paused_days < 0:
        raise InvalidInput(f"paused days cannot be negative ({paused_days})")
    # relativedelta keeps the day of the month, or takes the month's last day when it is shorter.
    due = start + relativedelta(months=1 + extension_months) + timedelta(days=paused_days)
    return next_working_day(due, region)

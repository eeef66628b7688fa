"""Retention rules, parsed from the words a controller's instruction uses.

    "7 years from the end of the financial year"      the financial year the record relates to
    "30 days from collection"                         the record's creation
    "6 years after the contract ends"                 the contract's end date, in relates_to
    "until the enquiry is closed"                     the enquiry purge's own, event-driven rule

A record is kept through the last day of its period and may be deleted from the start (00:00 UTC)
of the next day: a record of the financial year ending 31 March 2019 under "7 years from the end of
the financial year" is kept on 31 March 2026 and deleted on 1 April 2026.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta

from include.common.errors import InvalidInput

UNITS = ("day", "week", "month", "year")
# Anchor phrase -> (anchor, the record column it is read from).
ANCHORS = {
    "collection": ("collection", "created_at"),
    "the date of collection": ("collection", "created_at"),
    "the end of the financial year": ("financial_year_end", "relates_to"),
    "the end of the financial year the record relates to": ("financial_year_end", "relates_to"),
    "the contract ends": ("contract_end", "relates_to"),
    "the end of the contract": ("contract_end", "relates_to"),
}
ENQUIRY_CLOSED = "until the enquiry is closed"
_PERIOD = re.compile(r"^(?P<amount>\d{1,3}) (?P<unit>day|week|month|year)s? (?:from|after) (?P<anchor>.+)$")


def start_of(day: date) -> datetime:
    """00:00 UTC of the day."""
    return datetime.combine(day, time(), UTC)


@dataclass(frozen=True)
class FinancialYearEnd:
    month: int = 3
    day: int = 31

    @classmethod
    def parse(cls, text: str) -> FinancialYearEnd:
        match = re.fullmatch(r"(\d{2})-(\d{2})", text or "")
        if not match:
            raise InvalidInput(f"financial_year_end must be MM-DD (such as 03-31), got {text!r}")
        month, day = int(match[1]), int(match[2])
        try:
            date(2001, month, day)  # a year without 29 February: that is no year end
        except ValueError:
            raise InvalidInput(f"financial_year_end {text!r} is not a day of the year") from None
        return cls(month, day)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"

    def year_end_of(self, day: date) -> date:
        """The last day of the financial year that `day` falls in."""
        end = date(day.year, self.month, self.day)
        return end if day <= end else date(day.year + 1, self.month, self.day)


@dataclass(frozen=True)
class RetentionRule:
    text: str
    amount: int = 0
    unit: str = "day"
    anchor: str = "enquiry_closed"
    column: str = "outcome_at"

    @classmethod
    def parse(cls, text: object) -> RetentionRule:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("a retention rule must be text such as '7 years from the end of the "
                               "financial year'")
        words = " ".join(text.strip().lower().split())
        if words == ENQUIRY_CLOSED:
            return cls(words)
        match = _PERIOD.match(words)
        if not match:
            raise InvalidInput(f"retention rule {text!r} is not '<number> <days|weeks|months|years> "
                               f"from|after <{' | '.join(sorted(ANCHORS))}>' or '{ENQUIRY_CLOSED}'")
        anchor = ANCHORS.get(match["anchor"])
        if anchor is None:
            raise InvalidInput(f"retention rule {text!r}: '{match['anchor']}' is not one of: "
                               f"{', '.join(sorted(ANCHORS))}")
        return cls(words, int(match["amount"]), match["unit"], *anchor)

    @property
    def scheduled(self) -> bool:
        """Ends on a date the retention sweep can compute (the enquiry rule ends on an event)."""
        return self.anchor != "enquiry_closed"

    def _period(self) -> relativedelta:
        return relativedelta(**{f"{self.unit}s": self.amount})

    def end_for(self, anchor_day: date, year_end: FinancialYearEnd) -> datetime:
        """The instant the record may be deleted, given the date in its rule's column."""
        if self.anchor == "financial_year_end":
            anchor_day = year_end.year_end_of(anchor_day)
        last_kept = anchor_day + self._period()
        return start_of(last_kept + timedelta(days=1))

    def end_of_day(self, day: date, year_end: FinancialYearEnd) -> datetime:
        """The end of a record whose rule's column holds `day` (for the enquiry rule, the day it
        closed: the enquiry purge deletes it then)."""
        return self.end_for(day, year_end) if self.scheduled else start_of(day)

    def end(self, *, created_at: datetime | None, relates_to: date | None,
            outcome_at: datetime | None, year_end: FinancialYearEnd) -> datetime | None:
        """A record's retention end, or None while it depends on an event still to come."""
        value = (created_at if self.column == "created_at" else relates_to if self.column == "relates_to"
                 else outcome_at)
        if value is None:
            return None
        if isinstance(value, datetime):
            value = value.astimezone(UTC).date()
        return self.end_of_day(value, year_end)

    def last_expired_day(self, as_of: datetime, year_end: FinancialYearEnd) -> date:
        """The latest date in the rule's column whose records have expired by `as_of`.

        end_for is non-decreasing in its date, so a binary search finds the boundary; an expiry
        query then reads `column <= that day`, which an index serves.
        """
        low = as_of.date() - self._period() - timedelta(days=800)  # surely expired
        high = as_of.date()  # surely not: every period ends after its anchor
        while high - low > timedelta(days=1):
            middle = low + (high - low) // 2
            if self.end_for(middle, year_end) <= as_of:
                low = middle
            else:
                high = middle
        return low

    def cutoff(self, as_of: datetime, year_end: FinancialYearEnd) -> datetime:
        """Records (and log lines) from before this instant have expired by `as_of`."""
        return start_of(self.last_expired_day(as_of, year_end) + timedelta(days=1))

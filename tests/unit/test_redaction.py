"""Redaction of other people from free text and log lines (Art. 15(4)): names in any script and case,
phone numbers of any country; the requester's own names and numbers stay."""

from __future__ import annotations

import unicodedata

import pytest

from include.stores.identities import IdentitySet
from include.stores.redaction import WITHHELD, Redactor, name_words

OWN_NAMES = ["Zoë", "Ångström", "Fenland Cycles Ltd"]


def redactor(*names: str) -> Redactor:
    identities = IdentitySet.given([("email", "zoe.angstrom@example.org"), ("phone", "+33 1 23 45 67 89")])
    return Redactor(identities, name_words([*(names or OWN_NAMES)]))


@pytest.mark.parametrize(("text", "other"), [
    ("Please call BOB SMITH about the frame.", "BOB SMITH"),
    ("Zoë Ångström's neighbour Siobhán O'Neill collected it.", "Siobhán O'Neill"),
    ("Siobhán O’Neill collected it.", "Siobhán O’Neill"),
    ("Delivered to Mary McDonald next door.", "Mary McDonald"),
    ("Left with McDonald at number 4.", "McDonald"),
    ("Spoke to Ludwig van Beethoven.", "Ludwig van Beethoven"),
    ("Signed for by J. Smith.", "J. Smith"),
    ("Passed on by Dear Bob Smith", "Bob Smith"),
    ("Her partner's number is +1 415 555 0100.", "+1 415 555 0100"),
    ("Paris office: +33 1 23 45 67 80, ask for reception.", "+33 1 23 45 67 80"),
    ("Paris office: 0033 1 23 45 67 80.", "0033 1 23 45 67 80"),
    ("Berlin: +49 30 901820.", "+49 30 901820"),
    ("His mobile is 07700 900123.", "07700 900123"),
    ("Copy to zoë.other@exämple.com please.", "zoë.other@exämple.com"),
])
def test_other_peoples_names_and_numbers_are_withheld_in_any_script_case_and_country(text, other):
    r = redactor()
    out = r.free_text(text)
    assert other not in out and WITHHELD in out, out
    assert r.withheld >= 1


@pytest.mark.parametrize("text", [
    "Zoë Ångström collected it.",
    "ZOË ÅNGSTRÖM collected it.",
    "zoë ångström asked",  # not shaped like a name: nothing to withhold
    "Dear Zoë Ångström, thank you.",
    "Fenland Cycles Ltd thanks Zoë Ångström.",
    unicodedata.normalize("NFD", "Zoë Ångström collected it."),  # accents as combining marks
    "Call me on +33 1 23 45 67 89 or 0033 1 23 45 67 89 or write to zoe.angstrom@example.org.",
    "Order status changed from Pending payment to Processing.",
    "Invoice 2026/0042 of 30/10/2026 for £1,234.56, order #100234.",
])
def test_the_requesters_own_names_and_numbers_and_plain_text_stay(text):
    r = redactor()
    assert r.free_text(text) == text
    assert r.withheld == 0


def test_own_names_compare_by_unicode_case_and_apostrophe():
    r = redactor("Siobhán", "O’Neill")
    assert r.free_text("SIOBHÁN O'NEILL rang.") == "SIOBHÁN O'NEILL rang."
    assert r.free_text("Siobhán O'Neill's order") == "Siobhán O'Neill's order"
    assert r.free_text("Siobhán O'Brien rang.") == f"{WITHHELD} rang."  # one word not hers: all of it goes
    assert r.withheld == 1


def test_log_lines_keep_the_requesters_number_and_lose_others_but_not_their_times_and_sizes():
    r = redactor()
    line = ('203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET /call?me=%2B33123456789&them=+14155550100 '
            'HTTP/1.1" 200 51234 "-" "Mozilla/5.0"')
    out = r.contacts(line)
    assert "+14155550100" not in out and out.count(WITHHELD) == 1
    assert out.startswith('203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET /call?me=%2B33123456789&them=')
    assert out.endswith(' HTTP/1.1" 200 51234 "-" "Mozilla/5.0"')
    plain = '203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET /shop?id=123456789 HTTP/1.1" 200 51234 "-" "UA"'
    assert r.contacts(plain) == plain

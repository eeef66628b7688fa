"""Redaction: what a record says about other people is withheld from an access package (Art. 15(4)).

Free text (an order note, an enquiry's message) and log lines may name someone else or give their
email address or phone number. Email addresses and phone numbers are kept only when they are the
requester's own identities; in free text, a run of two or three capitalised words (a person's name)
is kept only when every word is one of the requester's names or the controller's. When in doubt
the value is withheld: the package says how many values were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from include.stores.identities import IdentitySet
from include.errors import InvalidInput
from include.identities import normalise_email, normalise_phone

WITHHELD = "[withheld: about another person]"
# Fields and columns that hold a person's name.
NAME_FIELDS = ("name", "first_name", "last_name", "billing_name")
# The vault's fields that hold free text; the others hold one value of the record's own subject.
VAULT_FREE_TEXT = ("message", "summary", "note")

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(r"(?<![\w+])(?:\+44[\s-]?|0)\d(?:[\s-]?\d){8,9}(?!\w)")
_NAME = re.compile(r"\b[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){1,2}\b")


class Redactor:
    def __init__(self, identities: IdentitySet, own_words: Iterable[str]) -> None:
        self.emails = set(identities.values("email"))
        self.phones = set(identities.values("phone"))
        self.own_words = {w.lower() for w in own_words}
        self.withheld = 0

    def _keep(self, normalise, value: str, own: set[str]) -> str:
        try:
            if normalise(value) in own:
                return value
        except InvalidInput:
            pass
        self.withheld += 1
        return WITHHELD

    def contacts(self, text: str) -> str:
        """Other people's email addresses and phone numbers withheld (for log lines)."""
        text = _EMAIL.sub(lambda m: self._keep(normalise_email, m[0], self.emails), text)
        return _PHONE.sub(lambda m: self._keep(normalise_phone, m[0], self.phones), text)

    def free_text(self, text: str) -> str:
        """contacts(), and names that are not the requester's or the controller's withheld."""
        text = self.contacts(text)

        def name(match: re.Match) -> str:
            if all(word.lower() in self.own_words for word in match[0].split()):
                return match[0]
            self.withheld += 1
            return WITHHELD
        return _NAME.sub(name, text)


def name_words(values: Iterable[object]) -> set[str]:
    """The words of names (the requester's, the controller's), for Redactor's own_words."""
    return {word for value in values if isinstance(value, str) for word in re.findall(r"[A-Za-z'’-]+", value)}


def full_names(rows: Iterable[dict]) -> set[str]:
    """The names the rows give, as free text would write them ("Jane Smith")."""
    names = set()
    for row in rows:
        if row.get("first_name") and row.get("last_name"):
            names.add(f"{row['first_name']} {row['last_name']}")
        names.update(row[f] for f in ("name", "billing_name") if isinstance(row.get(f), str) and row[f].strip())
    return names

"""Redaction: what a record says about other people is withheld from an access package (Art. 15(4)).

Free text (an order note, an enquiry's message) and log lines may name someone else or give their
email address or phone number. Email addresses and phone numbers are kept only when they are the
requester's own identities; in free text, a person's name is kept only when every word of it is one
of the requester's names or the controller's. When in doubt the value is withheld: the package says
how many values were.

Names are found by their shape, in any script and case: two or more capitalised words in a row
("Jane Smith", "BOB SMITH", "Zoë Ångström", "Siobhán O'Neill", "Maria de la Cruz"), or one word
shaped like a Gaelic surname ("McDonald", "MacLeod", "O'Neill"). Words are compared with the
requester's own after Unicode normalisation (NFC), case folding and with every apostrophe alike, so
"ZOË ÅNGSTRÖM" and "O’Neill" are the requester's when their records say "Zoë Ångström" and
"O'Neill". Phone numbers are found in any country's format: by phonenumbers' matcher (numbers valid
for their country, international or British), by the British pattern (which also finds numbers of
the ranges kept for drama, which the matcher calls invalid) and by an international pattern for any
"+" number; each is compared with the requester's numbers in E.164.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

import phonenumbers

from include.common.errors import InvalidInput
from include.common.identities import normalise_email, normalise_phone
from include.stores.identities import IdentitySet

WITHHELD = "[withheld: about another person]"
# Fields and columns that hold a person's name.
NAME_FIELDS = ("name", "first_name", "last_name", "billing_name")
# The vault's fields that hold free text; the others hold one value of the record's own subject.
VAULT_FREE_TEXT = ("message", "summary", "note")

_EMAIL = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w+])(?:\+44[\s-]?|0)\d(?:[\s-]?\d){8,9}(?!\w)")
# "+" and a country code, then 6 to 14 more digits with at most two separators between each.
_INTERNATIONAL_PHONE = re.compile(r"(?<![\w+])\+[1-9](?:[\s().-]{0,2}\d){6,14}(?!\w)")
_SEVEN_DIGITS = re.compile(r"\d(?:\D*\d){6}")  # fewer, and no detector can find a number
_DEFAULT_REGION = "GB"  # a number written without "+" is read as British

# A word of a name: letters of any script (with combining accents, for text that is not in NFC),
# joined by apostrophes or hyphens ("O'Neill", "Smith-Jones").
_LETTERS = r"[^\W\d_][\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]*"
_WORD = re.compile(rf"(?:{_LETTERS})+(?:['’‘-](?:{_LETTERS})+)*")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'"})
# One word that is a surname by its shape: Mc, Mac or O' and a capital ("MacBook" is withheld too:
# when in doubt, withhold).
_SURNAME = re.compile(r"(?:Mc|Mac|O')[^\W\d_]")
# Lower-case words that join the capitalised words of one name.
_PARTICLES = frozenset({"de", "del", "della", "der", "di", "da", "dos", "du", "la", "le", "van", "von", "den",
                        "ter", "ten", "bin", "ibn", "al", "el", "y"})
# Greetings begin a name ("Dear Zoë") but say nothing of whose it is: the rest of the name decides.
# Titles do count ("Mr Smith" beside a requester Jane Smith may be someone else).
_GREETINGS = frozenset({"dear", "hi", "hello"})


def _key(word: str) -> str:
    """A word as it is compared: NFC, case-folded, one apostrophe, no possessive "'s"."""
    key = unicodedata.normalize("NFC", word).translate(_APOSTROPHES).casefold()
    return key[:-2] if key.endswith("'s") and len(key) > 3 else key


def _capitalised(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and (letters[0].isupper() or letters[0].istitle())


def _initial(word: str) -> bool:
    return len(word) == 1 and word.isupper()


def _is_surname(word: str) -> bool:
    shaped = unicodedata.normalize("NFC", word).translate(_APOSTROPHES)
    match = _SURNAME.match(shaped)
    return match is not None and shaped[match.end() - 1].isupper()


def _merged(spans: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """Overlapping spans as one, kept only if every one of them is kept."""
    merged: list[tuple[int, int, bool]] = []
    for start, end, keep in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2] and keep)
        else:
            merged.append((start, end, keep))
    return merged


class Redactor:
    def __init__(self, identities: IdentitySet, own_words: Iterable[str]) -> None:
        self.emails = set(identities.values("email"))
        self.phones = set(identities.values("phone"))
        self.own_words = {_key(w) for w in own_words}
        self.withheld = 0

    @staticmethod
    def _own(normalise: Callable[[str], str], value: str, own: set[str]) -> bool:
        try:
            return normalise(value) in own
        except InvalidInput:
            return False

    def _replace(self, text: str, spans: list[tuple[int, int, bool]]) -> str:
        """The text with the spans not kept withheld, each counted."""
        out, at = [], 0
        for start, end, keep in spans:
            if not keep:
                out += [text[at:start], WITHHELD]
                at = end
                self.withheld += 1
        return "".join(out) + text[at:] if out else text

    def _phones(self, text: str) -> list[tuple[int, int, bool]]:
        if not _SEVEN_DIGITS.search(text):
            return []
        parsed = [(m.start, m.end, phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
                   in self.phones) for m in phonenumbers.PhoneNumberMatcher(text, _DEFAULT_REGION)]
        # A pattern's find inside a number the matcher read is the matcher's to decide ("0033 1 23 45
        # 67 89" is French, not "0033 1 23 45 67 8" British); one that reaches beyond it counts too.
        return parsed + [(m.start(), m.end(), self._own(normalise_phone, m[0], self.phones))
                         for pattern in (_PHONE, _INTERNATIONAL_PHONE) for m in pattern.finditer(text)
                         if not any(start <= m.start() and m.end() <= end for start, end, _ in parsed)]

    def contacts(self, text: str) -> str:
        """Other people's email addresses and phone numbers withheld (for log lines)."""
        emails = [(m.start(), m.end(), self._own(normalise_email, m[0], self.emails)) for m in _EMAIL.finditer(text)]
        # A number inside an address is the address's to decide.
        phones = [span for span in self._phones(text)
                  if not any(span[0] < end and start < span[1] for start, end, _ in emails)]
        return self._replace(text, _merged(emails + phones))

    def free_text(self, text: str) -> str:
        """contacts(), and names that are not the requester's or the controller's withheld."""
        text = self.contacts(text)
        return self._replace(text, [(start, end, all(_key(w) in self.own_words for w in words
                                                     if _key(w) not in _GREETINGS))
                                    for start, end, words in _names(text)])


def _names(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, words) of each name the text seems to hold: a run of capitalised words and
    initials ("J." or "J") separated by white space, with lower-case particles inside, of two or more
    with one capitalised word at least; or one surname-shaped word. The words exclude the particles."""
    names = []
    run: list[re.Match] = []  # the run's words and the particles between them
    pending: list[re.Match] = []  # particles after the run's last word, kept if another word follows

    def close() -> None:
        words = [m[0] for m in run if m[0].lower() not in _PARTICLES or not m[0].islower()]
        if (len(words) >= 2 and any(map(_capitalised, words))) or (len(words) == 1 and _is_surname(words[0])):
            names.append((run[0].start(), run[-1].end(), words))

    for match in _WORD.finditer(text):
        last = (pending or run)[-1] if run else None
        gap = text[last.end():match.start()] if last else ""
        joined = last is not None and (gap.isspace() or (
            _initial(last[0]) and gap[:1] == "." and (gap[1:] == "" or gap[1:].isspace())))
        if _capitalised(match[0]) or _initial(match[0]):
            if joined:
                run += pending
            else:
                if run:
                    close()
                run = []
            run.append(match)
            pending = []
        elif joined and match[0] in _PARTICLES:
            pending.append(match)
        else:
            if run:
                close()
            run, pending = [], []
    if run:
        close()
    return names


def name_words(values: Iterable[object]) -> set[str]:
    """The words of names (the requester's, the controller's), for Redactor's own_words."""
    return {match[0] for value in values if isinstance(value, str) for match in _WORD.finditer(value)}


def full_names(rows: Iterable[dict]) -> set[str]:
    """The names the rows give, as free text would write them ("Jane Smith")."""
    names = set()
    for row in rows:
        if row.get("first_name") and row.get("last_name"):
            names.add(f"{row['first_name']} {row['last_name']}")
        names.update(row[f] for f in ("name", "billing_name") if isinstance(row.get(f), str) and row[f].strip())
    return names

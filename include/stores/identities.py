"""A request's identities as the stores come to know them, each with its standing.

Only the identities the request was made with are proof. Values found in the person's rows (a phone
on their account, an IP address on their order) are evidence: a store searches with one only after
checking that no row of another owner holds it. A value that rows of another owner hold too (a
household phone, a shop's system address, a shared IP address) is *shared*: nothing reached only
through it is given to the person or acted on; it waits for a human as a possible match.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import phonenumbers

from include.common.errors import InvalidInput
from include.common.identities import NORMALISERS

STRONG_KINDS = ("email", "customer_number")  # one person's: a row holding another is another's
SEARCHED_KINDS = ("email", "phone", "customer_number")  # an IP never finds SQL rows or subjects


class Standing(StrEnum):
    excluded = "excluded"  # the map says it is never a person's identity (a system address)
    given = "given"  # in the request: proof
    shared = "shared"  # also on rows of another owner: never followed
    confirmed = "confirmed"  # found on the person's rows and on no one else's
    candidate = "candidate"  # found on the person's rows elsewhere; not yet checked in this store


_PRECEDENCE = list(Standing)  # the first wins when two stores disagree


def another_person(owner: set[tuple[str, str]], person: set[tuple[str, str]]) -> bool:
    """Whether an owner's emails and customer numbers say it is someone else: for some kind both
    hold values of, they share none. (A customer number the person never gave says nothing.)"""
    kinds = {kind for kind, _ in owner} & {kind for kind, _ in person}
    return any(not {v for k, v in owner if k == kind} & {v for k, v in person if k == kind} for kind in kinds)


@dataclass
class Identity:
    kind: str
    value: str  # normalised
    standing: Standing
    source: str  # where it came from, for the package's provenance
    spellings: list[str] = field(default_factory=list)  # as the stores wrote it

    @property
    def usable(self) -> bool:
        return self.standing in (Standing.given, Standing.confirmed)


@dataclass
class IdentitySet:
    entries: dict[tuple[str, str], Identity] = field(default_factory=dict)

    def add(self, kind: str, raw: object, source: str, standing: Standing = Standing.candidate) -> Identity | None:
        """Add a value as found (or given); one that is not a valid identity of its kind is skipped.
        Returns the entry if it is new."""
        try:
            value = NORMALISERS[kind](raw)
        except InvalidInput:
            return None
        known = self.entries.get((kind, value))
        if known is not None:
            if str(raw).strip() not in known.spellings:
                known.spellings.append(str(raw).strip())
            if _PRECEDENCE.index(standing) < _PRECEDENCE.index(known.standing):
                known.standing = standing
            return None
        entry = self.entries[(kind, value)] = Identity(kind, value, standing, source, [str(raw).strip()])
        return entry

    def get(self, kind: str, value: str) -> Identity | None:
        return self.entries.get((kind, value))

    def of(self, kind: str, *standings: Standing) -> list[Identity]:
        return [e for e in self.entries.values() if e.kind == kind and (not standings or e.standing in standings)]

    def values(self, kind: str) -> list[str]:
        """The usable values of a kind: given, or confirmed as the person's alone."""
        return [e.value for e in self.entries.values() if e.kind == kind and e.usable]

    def strong(self) -> set[tuple[str, str]]:
        return {(e.kind, e.value) for e in self.entries.values() if e.kind in STRONG_KINDS and e.usable}

    def exclude(self, kind: str, raw_values: list[str]) -> None:
        for raw in raw_values:
            self.add(kind, raw, "the data map: never a person's identity", Standing.excluded)

    def merge(self, other: IdentitySet) -> None:
        for entry in other.entries.values():
            for spelling in entry.spellings or [entry.value]:
                self.add(entry.kind, spelling, entry.source, entry.standing)

    def for_next_store(self) -> IdentitySet:
        """What another store starts from: the given stay proof, what one store confirmed is
        evidence for the next to check, and what was shared stays shared."""
        following = IdentitySet()
        for entry in self.entries.values():
            standing = Standing.candidate if entry.standing == Standing.confirmed else entry.standing
            following.entries[(entry.kind, entry.value)] = Identity(entry.kind, entry.value, standing,
                                                                    entry.source, list(entry.spellings))
        return following

    def written(self, kind: str, value: str) -> list[str]:
        """Every way a store may have written the identity: as given or found, and canonical forms."""
        entry = self.entries.get((kind, value))
        forms = [value, *(entry.spellings if entry else [])]
        if kind == "phone":
            number = phonenumbers.parse(value)
            canonical = [phonenumbers.format_number(number, f) for f in (
                phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL)]
            forms += canonical + [f.replace(" ", "") for f in canonical]
        elif kind == "ip" and ":" not in value:
            forms.append(f"::ffff:{value}")
        return list(dict.fromkeys(forms))

    def describe(self, kind: str, value: str) -> str:
        entry = self.entries[(kind, value)]
        return f"{kind} {value} ({entry.source})"

    def to_json(self) -> list[dict]:
        return [asdict(entry) for entry in self.entries.values()]

    @classmethod
    def from_json(cls, data: list[dict]) -> IdentitySet:
        found = cls()
        for item in data:
            entry = Identity(**{**item, "standing": Standing(item["standing"])})
            found.entries[(entry.kind, entry.value)] = entry
        return found

    @classmethod
    def given(cls, pairs) -> IdentitySet:
        """The identities a request was made with: [(kind, value)]."""
        identities = cls()
        for kind, value in pairs:
            identities.add(kind, value, "given in the request", Standing.given)
        return identities

"""Normalisers for the identities people are found by: email, phone, IP address, customer number.

Each returns the canonical form that blind indexes hash, or raises InvalidInput naming the kind of
identity and what is wrong with it, never the value itself.
"""

from __future__ import annotations

import ipaddress
import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from include.common.errors import InvalidInput

MAX_IDENTITY_LENGTH = 320  # RFC 5321's longest address; nothing shorter is cut off


def _text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{kind} must be text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{kind} is empty")
    if len(value) > MAX_IDENTITY_LENGTH:
        raise InvalidInput(f"{kind} is longer than {MAX_IDENTITY_LENGTH} characters")
    return value


# Plain ASCII addresses, which email-validator would pass unchanged but for case, skip its full
# parse (a bulk ingest's costliest step). Anything else takes the full path; a test checks that
# both paths agree.
_PLAIN_EMAIL = re.compile(
    r"(?=[^@]{1,64}@)[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*"
    r"@(?:(?!-)(?!..--)[a-z0-9-]{1,63}(?<!-)\.)+(?!(?:arpa|invalid|local|localhost|onion|test)$)[a-z]{2,63}",
    re.ASCII | re.IGNORECASE,
)
EMAIL_MAX_LENGTH = 254


def normalise_email(value: object) -> str:
    text = _text("email", value)
    if len(text) <= EMAIL_MAX_LENGTH and _PLAIN_EMAIL.fullmatch(text):
        return text.lower()
    return _validated_email(text)


def _validated_email(text: str) -> str:
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"email is not a valid address: {_email_fault(str(exc), text)}") from None
    return checked.normalized.lower()


# email-validator's messages put what they quote from the address (the characters at fault, an IDNA
# or IP-literal error naming a label, the text after a quote) after a colon or in brackets.
_QUOTED_DETAIL = re.compile(r":| \(")
_FRAGMENT_SEPARATORS = re.compile(r"[\W_]+")


def _email_fault(message: str, address: str) -> str:
    """The fault email-validator found, with no part of the address: its message is cut before any
    quoted detail, and if what is left still holds a piece of the address (three characters or more
    between separators), only that the address is malformed is said."""
    fault = _QUOTED_DETAIL.split(message, maxsplit=1)[0].strip().rstrip(".").strip()
    folded = fault.casefold()
    pieces = [p for p in _FRAGMENT_SEPARATORS.split(address.casefold()) if len(p) >= 3]
    if not fault or any(piece in folded for piece in pieces):
        return "it is malformed"
    return fault[:1].lower() + fault[1:]


# A UK number written as 0 or +44 and ten digits is always possible and needs no metadata lookup.
_PLAIN_UK_PHONE = re.compile(r"(?:0|\+44)([1-9][0-9]{9})", re.ASCII)
_PHONE_SEPARATORS = str.maketrans("", "", " -")


def normalise_phone(value: object, region: str = "GB") -> str:
    text = _text("phone", value)
    if region == "GB" and (plain := _PLAIN_UK_PHONE.fullmatch(text.translate(_PHONE_SEPARATORS))):
        return "+44" + plain.group(1)
    return _parsed_phone(text, region)


def _parsed_phone(text: str, region: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("phone is not a telephone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput("phone has the wrong number of digits for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_ip(value: object) -> str:
    text = _text("ip", value)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput("ip is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.compressed


_CUSTOMER_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,63}$")


def normalise_customer_number(value: object) -> str:
    text = _text("customer_number", value).upper()
    if not _CUSTOMER_NUMBER.match(text):
        raise InvalidInput("customer_number may hold only letters, digits and . _ / - (at most 64)")
    return text


NORMALISERS = {
    "email": normalise_email,
    "phone": normalise_phone,
    "ip": normalise_ip,
    "customer_number": normalise_customer_number,
}


def mask(value: str) -> str:
    """A shape-only stand-in for logs: first character and length, nothing else."""
    return f"{value[:1]}***({len(value)})" if value else "***"

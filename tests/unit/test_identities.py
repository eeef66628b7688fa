"""Normalisers of identities, including property-based checks."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.common.errors import InvalidInput
from include.common.identities import (
    NORMALISERS,
    _parsed_phone,
    _validated_email,
    normalise_customer_number,
    normalise_email,
    normalise_ip,
    normalise_phone,
)


def test_examples():
    assert normalise_email("  Ada.Lovelace@Example.CO.UK ") == "ada.lovelace@example.co.uk"
    assert normalise_phone("01733 267775") == "+441733267775"
    assert normalise_phone("+44 (0)1733 267775") == "+441733267775"
    assert normalise_ip("::ffff:192.0.2.7") == "192.0.2.7"
    assert normalise_ip("2001:DB8:0:0::1") == "2001:db8::1"
    assert normalise_customer_number(" cust-0042 ") == "CUST-0042"


@pytest.mark.parametrize("func, value, message", [
    (normalise_email, "ada.example.com", "email is not a valid address"),
    (normalise_email, "", "email is empty"),
    (normalise_email, 42, "email must be text, got int"),
    (normalise_email, "a" * 400 + "@example.com", "longer than 320"),
    (normalise_phone, "call me", "phone is not a telephone number"),
    (normalise_phone, "+44 12", "wrong number of digits"),
    (normalise_ip, "300.1.1.1", "ip is not an IPv4 or IPv6 address"),
    (normalise_customer_number, "no spaces allowed", "customer_number may hold only"),
])
def test_errors_name_the_identity_and_never_echo_it(func, value, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        func(value)
    if isinstance(value, str) and len(value) > 3:
        assert value not in str(caught.value)


_local = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9._+-]{0,20}[a-zA-Z0-9])?", fullmatch=True) \
    .filter(lambda s: ".." not in s)
_domain = st.from_regex(r"[a-z][a-z0-9]{0,10}\.(com|co\.uk|org)", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(_local, _domain)
def test_email_normalisation_is_idempotent_and_case_blind(local, domain):
    once = normalise_email(f"{local}@{domain}")
    assert normalise_email(once) == once
    assert normalise_email(f"{local.upper()}@{domain.upper()}") == once


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_ip_normalisation_is_idempotent(address):
    once = normalise_ip(str(address))
    assert normalise_ip(once) == once
    assert normalise_ip(str(address).upper()) == once


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=50), st.emails().map(str), st.ip_addresses().map(str),
                 st.from_regex(r"\A(\+44 ?|0)[1-7][0-9]{3} ?[0-9]{6}\Z"), st.from_regex(r"\A[A-Za-z0-9-]{1,20}\Z")))
def test_arbitrary_text_is_normalised_or_refused_cleanly(text):
    """Cleanly: a refusal is InvalidInput naming the kind of identity (anything else escapes and fails
    the test); a normalised value is its own normal form, so its blind index is the same however often
    it is normalised."""
    for kind, func in NORMALISERS.items():
        try:
            once = func(text)
        except InvalidInput as exc:
            assert str(exc).startswith(kind), str(exc)
        else:
            assert isinstance(once, str) and func(once) == once


# The fast paths must give exactly what the full parsers give, or blind indexes would split a person.
def _outcome(func, value):
    try:
        return func(value)
    except InvalidInput:
        return "refused"


_email_like = st.from_regex(
    r"[a-zA-Z0-9._+\-\"!]{0,70}@[a-zA-Z0-9.\-]{0,20}\.(com|co\.uk|test|local|arpa|c0m|x|xn--p1ai|a--b\.org|"
    r"[a-z]{2,4})", fullmatch=True)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_email_like, st.builds(lambda l, d: f"{l}@{d}", _local, _domain)))
def test_email_fast_path_agrees_with_email_validator(address):
    assert _outcome(normalise_email, address) == _outcome(lambda a: _validated_email(a.strip()), address)


_phone_like = st.builds(
    lambda prefix, digits, sep: prefix + sep.join(digits[i:i + 4] for i in range(0, len(digits), 4)),
    st.sampled_from(["0", "+44", "00", "+440", "+1", ""]),
    st.text("0123456789", min_size=8, max_size=12),
    st.sampled_from(["", " ", "-"]))


@settings(max_examples=1500, deadline=None)
@given(_phone_like)
def test_phone_fast_path_agrees_with_phonenumbers(number):
    assert _outcome(normalise_phone, number) == _outcome(lambda n: _parsed_phone(n.strip(), "GB"), number)


# email-validator's messages quote parts of the address: the characters at fault, a domain label an
# IDNA check refused, an IP literal, what follows a closing quote. None may reach our message.
@pytest.mark.parametrize("address, fault", [
    ("zebedee.quixwort@quixmail_zqx.co.uk", "the part after the @-sign contains invalid characters"),
    ("zebedee.quixwort@quixmail\u0640.co.uk", "the part after the @-sign is invalid"),
    ("zebedee.quixwort@\u0661quixmail1.co.uk", "the part after the @-sign is invalid"),
    ("zebedee@[IPv6:quix::1]", "it is malformed|the IPv6 address in brackets after the @-sign is not valid"),
    ("zebedee@[1.2.quix]",
     "the part after the @-sign in brackets is not an IPv4 address and has no address literal tag"),
    ('"zebedee"quixwort@quixmail.co.uk', r"extra character\(s\) found after close quote"),
    ("zebe dee@quixmail.co.uk", "the email address contains invalid characters before the @-sign"),
    ("zebedee@quixmail.co.uk\u200b", "the email address contains unsafe characters"),
])
def test_email_errors_name_the_fault_and_quote_nothing_of_the_address(address, fault):
    with pytest.raises(InvalidInput, match=rf"^email is not a valid address: (?:{fault})$") as caught:
        normalise_email(address)
    reason = str(caught.value).removeprefix("email is not a valid address: ")
    assert "'" not in reason and '"' not in reason and " (" not in reason
    for piece in {address, *(p for p in re.split(r"[\W_]+", address) if len(p) >= 3)}:
        assert piece.casefold() not in reason.casefold(), reason


@settings(max_examples=300, deadline=None)
@given(st.builds(lambda local, domain: f"{local}@{domain}",
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=16)))
def test_no_email_error_holds_a_piece_of_the_address(address):
    try:
        normalise_email(address)
    except InvalidInput as exc:
        reason = str(exc).split(": ", 1)[-1]
        assert "'" not in reason and " (" not in reason
        pieces = [p for p in re.split(r"[\W_]+", address.strip().casefold()) if len(p) >= 3]
        assert reason == "it is malformed" or not [p for p in pieces if p in reason.casefold()], reason

"""`receiving_site.redeem.parse_secret`: which parser hears what was typed or scanned, and so
which sentence the nurse reads."""

from __future__ import annotations

import pytest

from receiving_site.errors import (
    AuthorizationLinkGiven,
    NoSecretGiven,
    ScannedGarbled,
    WebAddressGiven,
)
from receiving_site.redeem import parse_secret
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.errors import (
    CapabilityFormatError,
    CapabilityLengthError,
    CodeCharacterError,
    CodeChecksumError,
    CodeLengthError,
    UnknownCapabilityVersion,
)

CODE = RedemptionCode(locator=7, secret=12345)
CAPABILITY = Capability(transfer_id="0123456789ABCDEFGHJKMNPQ", secret=bytes(range(20)))


def test_a_code_and_a_capability_parse() -> None:
    assert parse_secret(f"  {CODE.grouped().lower()}\n") == CODE
    assert parse_secret(f" {CAPABILITY.to_text().lower()} ") == CAPABILITY


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_nothing_given(text: str) -> None:
    with pytest.raises(NoSecretGiven, match="No code was given"):
        parse_secret(text)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("ABCD-EFGH-JKMN-PQR", CodeLengthError),
        ("ABCD-EFGH-JKMN-PQRU", CodeCharacterError),
        ("ABCD-EFGH-JKMN-PQRS", CodeChecksumError),
        ("0" * 20, CodeLengthError),  # too long for a code, but not past typing
        ("0" * 40, ScannedGarbled),  # too long to be typed, and no QR's ':'
        ("TR" + "0" * 40, ScannedGarbled),  # a capability whose ':' a scanner garbled
        ("TR1\u00d6T\u00d6" + "0" * 24 + "\u00d6K\u00d6" + "0" * 32, ScannedGarbled),  # German
        ("- -", CodeLengthError),  # separators only
        ("relay.example:8750/x", CodeCharacterError),  # a colon, but no capability nor address
        ("TR2:T:X:K:Y", UnknownCapabilityVersion),
        ("TR1:T:ABC", CapabilityFormatError),
        ("tr1:x", CapabilityLengthError),
        ("TRX:T:X:K:Y", CapabilityFormatError),
    ],
)
def test_the_parser_that_hears_it_says_what_is_wrong(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        parse_secret(text)
    assert type(raised.value) is error


@pytest.mark.parametrize(
    "text",
    [
        "https://relay.example/authorize#" + "A" * 48 + "." + "b" * 43,
        " HTTP://RELAY.EXAMPLE:8750/AUTHORIZE#TOKEN.KEY\n",  # a scanner with caps lock on
        "http://127.0.0.1:8750/authorize",  # its fragment cut off
        "https://relay.example/base/authorize/#token.key",
    ],
)
def test_the_familys_authorization_link_is_named_as_such(text: str) -> None:
    with pytest.raises(AuthorizationLinkGiven, match="authorization link") as raised:
        parse_secret(text)
    assert "token" not in str(raised.value).lower()


@pytest.mark.parametrize(
    "text",
    [
        "https://relay.example/x",
        " HTTP://WWW.EXAMPLE.ORG/\n",  # a scanner with caps lock on
        "https://hospital.example/patients?id=123#top",
        "http://10.0.0.5:8080",
        "https://relay.example/authorize-other",  # not the authorization link
    ],
)
def test_another_web_address_is_named_as_such(text: str) -> None:
    with pytest.raises(WebAddressGiven, match="is a web address, not a transfer code"):
        parse_secret(text)

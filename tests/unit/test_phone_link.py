"""`transfer_codes.phone`: the authorization link and the blobs sealed for the phone. The browser
side of the same format is exercised in tests/browser."""

from __future__ import annotations

import pytest

from transfer_codes.errors import UnwrapError
from transfer_codes.phone import (
    PhoneSummary,
    authorization_link,
    decode_key,
    encode_key,
    iso_date,
    new_phone_key,
    open_sealed,
    seal,
    seal_code,
    seal_summary,
    split_link,
)
from transfer_codes.tokens import new_token

# Pinned: key bytes 0..31, nonce bytes 100..111, purpose "code". If this changes, the phone page
# (relay/pages/authorize.js) no longer reads what the sending site seals.
KNOWN_KEY = bytes(range(32))
KNOWN_SEALED = bytes.fromhex(
    "6465666768696a6b6c6d6e6f3339bd091d8c74a41c231dab9e482fbb058a2b40c021bd5ff780fe1bd9de29bd9b"
    "6e324edd98cb264beddfbf0e71"
)


def test_known_answer() -> None:
    assert open_sealed(KNOWN_KEY, "code", KNOWN_SEALED) == {"code": "ABCD-EFGH-JKMN-PQRS"}


def test_link_round_trip() -> None:
    token, key = new_token(), new_phone_key()
    link = authorization_link("https://relay.example/", token, key)
    assert link == f"https://relay.example/authorize#{token}.{key}"
    assert split_link(link) == (token, key)
    assert len(key) == 43
    assert len(decode_key(key)) == 32


@pytest.mark.parametrize(
    "link",
    ["https://relay.example/authorize", "https://r/authorize#TOKEN", "https://r/authorize#.KEY"],
)
def test_split_link_refuses_what_is_not_a_link(link: str) -> None:
    with pytest.raises(ValueError, match="not an authorization link"):
        split_link(link)


@pytest.mark.parametrize("text", ["", "short", encode_key(bytes(31)), encode_key(bytes(32)) + "="])
def test_decode_key_refuses_wrong_keys(text: str) -> None:
    with pytest.raises(ValueError, match="phone key"):
        decode_key(text)


def test_a_blob_opens_only_as_what_it_was_sealed_as() -> None:
    key = decode_key(new_phone_key())
    sealed = seal(key, "summary", {"a": 1})
    assert open_sealed(key, "summary", sealed) == {"a": 1}
    assert sealed != seal(key, "summary", {"a": 1})  # fresh nonce every time
    with pytest.raises(UnwrapError):
        open_sealed(key, "code", sealed)
    with pytest.raises(UnwrapError):
        open_sealed(decode_key(new_phone_key()), "summary", sealed)
    with pytest.raises(UnwrapError):
        open_sealed(key, "summary", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(ValueError, match="purpose"):
        seal(key, "other", {})


def test_summary_and_code_blobs() -> None:
    key = decode_key(new_phone_key())
    summary = PhoneSummary(
        sender="St. Mary's ED",
        recipient="County Trauma",
        study_descriptions=("CT HEAD", "CT SPINE"),
        modalities=("CT",),
        study_date=iso_date("20250101"),
        series_count=2,
        image_count=400,
        expires_at=1_800_000_000.0,
        break_glass=True,
    )
    opened = open_sealed(key, "summary", seal_summary(key, summary))
    assert opened["study_descriptions"] == ["CT HEAD", "CT SPINE"]
    assert opened["study_date"] == "2025-01-01"
    assert opened["break_glass"] is True
    capability = "TR1:T:" + "0" * 24 + ":K:" + "0" * 32
    code = open_sealed(key, "code", seal_code(key, "ABCD-EFGH-JKMN-PQRS", capability))
    assert code["capability"] == capability
    assert str(code["qr_svg"]).startswith("<svg")


def test_iso_date_leaves_odd_dates_alone() -> None:
    assert iso_date("2025") == "2025"
    assert iso_date("") == ""

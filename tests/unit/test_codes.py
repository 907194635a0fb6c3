"""Redemption codes, Crockford base32, tokens and the error hierarchy."""

from __future__ import annotations

import base64
import hashlib
import inspect
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transfer_codes import base32, errors
from transfer_codes.codes import (
    LOCATOR_LIMIT,
    SECRET_LIMIT,
    RedemptionCode,
    looks_like_code,
)
from transfer_codes.errors import (
    CodeCharacterError,
    CodeChecksumError,
    CodeFormatError,
    CodeLengthError,
    TransferCodeError,
)
from transfer_codes.tokens import (
    is_transfer_id,
    new_token,
    new_transfer_id,
    normalize_token,
    token_digest,
)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

locators = st.integers(min_value=0, max_value=LOCATOR_LIMIT - 1)
secrets_65 = st.integers(min_value=0, max_value=SECRET_LIMIT - 1)
codes = st.builds(RedemptionCode, locator=locators, secret=secrets_65)


def sample_codes() -> list[RedemptionCode]:
    rng = random.Random(20261129)
    edge = [
        RedemptionCode(0, 0),
        RedemptionCode(LOCATOR_LIMIT - 1, SECRET_LIMIT - 1),
        RedemptionCode(1, 0),
        RedemptionCode(0, 1),
        RedemptionCode(512, 2**64),
    ]
    drawn = [
        RedemptionCode(rng.randrange(LOCATOR_LIMIT), rng.randrange(SECRET_LIMIT)) for _ in range(60)
    ]
    return edge + drawn


# --- base32 -----------------------------------------------------------------------------------


def test_base32_matches_rfc4648_under_alphabet_translation() -> None:
    """Independent check: same bit packing as the standard library, other alphabet."""
    rng = random.Random(1)
    for length in range(0, 41, 5):
        data = rng.randbytes(length)
        expected = base64.b32encode(data).decode().translate(str.maketrans(RFC4648, ALPHABET))
        assert base32.encode(data) == expected
        assert base32.decode(expected) == data


def test_base32_known_values() -> None:
    assert base32.encode(b"") == ""
    assert base32.encode(b"\x00" * 5) == "00000000"
    assert base32.encode(b"\xff" * 5) == "ZZZZZZZZ"
    assert base32.encode(bytes.fromhex("0842108421")) == "11111111"


@given(st.binary(max_size=60).map(lambda b: b[: len(b) - len(b) % 5]))
def test_base32_round_trip(data: bytes) -> None:
    text = base32.encode(data)
    assert set(text) <= set(ALPHABET)
    assert base32.decode(text) == data
    assert base32.decode(text.lower()) == data


def test_base32_folds_confusables() -> None:
    assert base32.decode("OoIiLl10") == base32.decode("00111110")


@pytest.mark.parametrize("data", [b"\x00", b"abcd", b"abcdef"])
def test_base32_encode_rejects_partial_groups(data: bytes) -> None:
    with pytest.raises(ValueError, match="multiple of 5"):
        base32.encode(data)


@pytest.mark.parametrize("text", ["0000000", "000000000", "0000000U", "0000 000", "0000-000"])
def test_base32_decode_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="base32"):
        base32.decode(text)


# --- tokens -----------------------------------------------------------------------------------


def test_transfer_ids_and_tokens_have_their_lengths_and_alphabet() -> None:
    ids = {new_transfer_id() for _ in range(200)}
    assert len(ids) == 200
    for transfer_id in ids:
        assert is_transfer_id(transfer_id)
        assert re.fullmatch(f"[{ALPHABET}]{{24}}", transfer_id)
    token = new_token()
    assert re.fullmatch(f"[{ALPHABET}]{{48}}", token)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0" * 23,
        "0" * 25,
        "a" * 24,
        "U" * 24,
        "O" * 24,
        "I" * 24,
        " " + "0" * 23,
        "0" * 23 + "-",
    ],
)
def test_is_transfer_id_rejects(text: str) -> None:
    assert not is_transfer_id(text)


def test_token_digest_is_sha256_of_the_normalized_token() -> None:
    token = "01" + new_token()[2:]  # holds both folded symbols
    assert token_digest(token) == hashlib.sha256(token.encode()).digest()
    sloppy = " " + token.lower().replace("0", "o").replace("1", "l") + "\n"
    assert "0" not in sloppy
    assert normalize_token(sloppy) == token
    assert token_digest(sloppy) == token_digest(token)
    assert token_digest(new_token()) != token_digest(token)


@pytest.mark.parametrize("garbage", ["", "\ud800", "not a token", "é" * 48])
def test_token_digest_never_raises(garbage: str) -> None:
    assert len(token_digest(garbage)) == 32


# --- codes: structure -------------------------------------------------------------------------


def test_hand_computed_check_symbols() -> None:
    # All zeros: the weighted sum is 0, so the check symbol is 0.
    assert RedemptionCode(0, 0).compact() == "0" * 16
    # Locator 1 puts d_1 = 1: check = alpha^1 * alpha^-15 = alpha^17 = x^4 + x + 1 = 19 = "K"
    # (alpha^5 = x^2 + 1, alpha^10 = x^4 + 1, alpha^15 = 31, alpha^16 = 27, alpha^17 = 19).
    assert RedemptionCode(1, 0).compact() == "01" + "0" * 13 + "K"
    # Secret 1 puts d_14 = 1: check = alpha^14 * alpha^16 = alpha^30 = alpha^-1 = x^4 + x = 18.
    assert RedemptionCode(0, 1).compact() == "0" * 14 + "1J"


@given(codes)
def test_code_round_trips(code: RedemptionCode) -> None:
    compact = code.compact()
    grouped = code.grouped()
    assert re.fullmatch(f"[{ALPHABET}]{{16}}", compact)
    assert re.fullmatch(f"([{ALPHABET}]{{4}}-){{3}}[{ALPHABET}]{{4}}", grouped)
    assert grouped.replace("-", "") == compact
    assert RedemptionCode.parse(compact) == code
    assert RedemptionCode.parse(grouped) == code
    assert RedemptionCode.parse(" ".join(grouped.lower().split("-"))) == code
    assert compact[:2] == base32.encode_int(code.locator, 2)


def test_layout_locator_then_secret() -> None:
    code = RedemptionCode(locator=0b11111_00000, secret=(1 << 64) | 5)
    assert code.compact()[:2] == "Z0"
    assert code.compact()[2:15] == "G000000000005"
    assert code.secret_bytes() == b"\x01" + b"\x00" * 7 + b"\x05"


def test_secret_bytes_is_nine_big_endian_bytes_without_the_locator() -> None:
    assert RedemptionCode(5, SECRET_LIMIT - 1).secret_bytes() == b"\x01" + b"\xff" * 8
    assert RedemptionCode(5, 7).secret_bytes() == RedemptionCode(900, 7).secret_bytes()


def test_generate_draws_fresh_secrets_for_the_locator() -> None:
    drawn = [RedemptionCode.generate(77) for _ in range(100)]
    assert {code.locator for code in drawn} == {77}
    assert len({code.secret for code in drawn}) == 100
    assert max(code.secret for code in drawn) >= 2**60  # uses the whole 65-bit range


@pytest.mark.parametrize(
    ("locator", "secret"), [(-1, 0), (LOCATOR_LIMIT, 0), (0, -1), (0, SECRET_LIMIT), (True, 0)]
)
def test_out_of_range_codes_are_refused(locator: int, secret: int) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        RedemptionCode(locator, secret)


def test_generate_refuses_bad_locator() -> None:
    with pytest.raises(ValueError, match="locator"):
        RedemptionCode.generate(LOCATOR_LIMIT)


def test_repr_and_str_never_show_the_secret() -> None:
    code = RedemptionCode(locator=3, secret=SECRET_LIMIT - 2)
    for shown in (repr(code), str(code), f"{code}", repr([code])):
        assert str(code.secret) not in shown
        assert code.compact()[2:] not in shown
        assert "hidden" in shown


# --- codes: error detection (exhaustive) ------------------------------------------------------


def test_every_single_substitution_is_rejected() -> None:
    checked = 0
    for code in sample_codes():
        compact = code.compact()
        for position in range(16):
            for symbol in ALPHABET:
                if symbol == compact[position]:
                    continue
                typo = compact[:position] + symbol + compact[position + 1 :]
                with pytest.raises(CodeChecksumError):
                    RedemptionCode.parse(typo)
                checked += 1
    assert checked == len(sample_codes()) * 16 * 31


def test_every_adjacent_transposition_is_rejected() -> None:
    checked = 0
    for code in sample_codes():
        compact = code.compact()
        for position in range(15):
            first, second = compact[position], compact[position + 1]
            if first == second:
                continue
            swapped = compact[:position] + second + first + compact[position + 2 :]
            with pytest.raises(CodeChecksumError):
                RedemptionCode.parse(swapped)
            checked += 1
    assert checked > len(sample_codes()) * 12


# --- codes: what people type ------------------------------------------------------------------


def test_confusables_case_and_separators_are_folded() -> None:
    code = next(c for c in sample_codes() if {"0", "1"} <= set(c.compact()))
    grouped = code.grouped()
    variants = [
        grouped.replace("0", "O").replace("1", "I"),
        grouped.lower().replace("0", "o").replace("1", "l"),
        grouped.replace("1", "L").replace("-", " "),
        "  " + grouped.replace("-", "\u2013") + "\n",  # en dash from a word processor
        grouped.replace("-", "\u2010"),
        "\t".join(grouped.split("-")),
    ]
    for variant in variants:
        assert RedemptionCode.parse(variant) == code


def test_character_error_names_the_position_among_code_characters() -> None:
    grouped = RedemptionCode(100, 12345).grouped()
    typed = grouped[:7] + "U" + grouped[8:]  # the 7th code character (hyphen not counted)
    with pytest.raises(CodeCharacterError) as raised:
        RedemptionCode.parse(typed)
    error = raised.value
    assert error.position == 7
    assert error.character == "U"
    assert str(error).startswith("Character 7 ('U') cannot appear in a transfer code.")
    assert "type it again" in str(error)
    assert "No attempt was used" in str(error)


def test_first_bad_character_is_reported() -> None:
    with pytest.raises(CodeCharacterError) as raised:
        RedemptionCode.parse("AB*D-EFGH-JK#M-NPQR")
    assert raised.value.position == 3
    assert "Character 3 ('*')" in str(raised.value)


@pytest.mark.parametrize(("cut", "count"), [(1, 15), (4, 12), (16, 0)])
def test_length_error_says_how_many_characters(cut: int, count: int) -> None:
    compact = RedemptionCode(9, 99).compact()
    with pytest.raises(CodeLengthError) as raised:
        RedemptionCode.parse(compact[: 16 - cut])
    assert raised.value.length == count
    assert f"The code has {count} characters but a transfer code has 16" in str(raised.value)
    assert "missing" in str(raised.value)


def test_length_error_for_extra_characters() -> None:
    with pytest.raises(CodeLengthError) as raised:
        RedemptionCode.parse(RedemptionCode(9, 99).grouped() + "-0")
    assert raised.value.length == 17
    assert "extra characters" in str(raised.value)


def test_checksum_error_is_actionable() -> None:
    compact = RedemptionCode(9, 99).compact()
    typo = compact[:5] + ("A" if compact[5] != "A" else "B") + compact[6:]
    with pytest.raises(CodeChecksumError) as raised:
        RedemptionCode.parse(typo)
    message = str(raised.value)
    assert "typing mistake" in message
    assert "group by group" in message
    assert "No attempt was used" in message


def test_code_errors_are_format_errors_and_value_errors() -> None:
    for error_type in (CodeLengthError, CodeCharacterError, CodeChecksumError):
        assert issubclass(error_type, CodeFormatError)
        assert issubclass(error_type, TransferCodeError)
        assert issubclass(error_type, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ABCD-EFGH-JKMN-PQRS", True),
        ("abcd efgh jkmn pqrs", True),
        ("ABCD-EFGH-JKMN-PQR", True),  # too short, but a code: parse() explains
        ("ABCD-EFUH-JKMN-PQRS", True),  # a U typo is still a code
        ("TR1:T:" + "0" * 24 + ":K:" + "0" * 32, False),
        ("tr1:t:abc", False),
        ("", False),
        ("   ", False),
        ("0" * 40, False),
    ],
)
def test_looks_like_code(text: str, expected: bool) -> None:
    assert looks_like_code(text) is expected


# --- errors -----------------------------------------------------------------------------------


def test_every_error_has_a_user_sentence_and_the_right_root() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 30
    for error_type in classes:
        assert issubclass(error_type, TransferCodeError)
        doc = " ".join((error_type.__doc__ or "").split())
        assert doc.endswith("."), error_type
        assert len(doc) > 30, error_type


def test_default_message_is_the_docstring() -> None:
    error = errors.TruncatedObject()
    assert str(error) == " ".join((errors.TruncatedObject.__doc__ or "").split())
    assert error.message == str(error)
    assert str(errors.UnwrapError("custom")) == "custom"


def test_contract_hierarchy() -> None:
    sealed = [
        "HeaderCorrupt",
        "UnsupportedFormatVersion",
        "ChunkTooLarge",
        "ChunkAuthenticationFailed",
        "ChunkReordered",
        "ChunkRepeated",
        "TruncatedObject",
        "MissingFinalChunk",
        "TrailingData",
        "ObjectMisplaced",
        "ObjectFromAnotherTransfer",
    ]
    manifest = [
        "ManifestAuthenticationFailed",
        "ManifestOutOfOrder",
        "ManifestAlreadyClosed",
        "ManifestEntryInvalid",
        "ObjectMismatch",
        "ObjectMissing",
        "UnexpectedObject",
    ]
    for name in sealed:
        assert issubclass(getattr(errors, name), errors.SealedObjectError)
    for name in manifest:
        assert issubclass(getattr(errors, name), errors.ManifestError)
    assert issubclass(errors.UnknownCapabilityVersion, errors.CapabilityFormatError)
    assert issubclass(errors.UnwrapError, TransferCodeError)

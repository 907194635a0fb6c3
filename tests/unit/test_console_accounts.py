"""Console passwords (scrypt, known answers), the account file and the local audit log."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from site_agent import errors, passwords
from site_agent.accounts import Accounts, user_name
from site_agent.audit import AuditLog, verify_chain
from site_agent.passwords import PasswordHash, hash_password, password_problem, verify

GOOD = "correct horse battery staple"
# hash_password(GOOD, salt=bytes(range(16))): pins scrypt's parameters (N=2^15, r=8, p=1, 32
# bytes), the NFKC + UTF-8 input and the stored text together.
PINNED = "scrypt$n=32768,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg"


def test_scrypt_is_the_rfc_7914_function() -> None:
    # RFC 7914 section 12, third vector: hashlib.scrypt is the function the hashes rely on.
    derived = hashlib.scrypt(b"pleaseletmein", salt=b"SodiumChloride", n=16384, r=8, p=1, dklen=64)
    assert derived.hex() == (
        "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"
    )


def test_known_answer_and_parameters() -> None:
    made = hash_password(GOOD, salt=bytes(range(16)))
    assert made.encode() == PINNED
    assert (made.n, made.r, made.p, len(made.key)) == (2**15, 8, 1, 32)
    assert 128 * made.n * made.r == 32 * 1024 * 1024  # bytes of memory per hash
    assert made.current
    assert PasswordHash.decode(PINNED) == made


def test_the_right_password_is_accepted_and_a_wrong_one_refused() -> None:
    stored = PasswordHash.decode(PINNED)
    assert verify(GOOD, stored)
    assert not verify(GOOD + " ", stored)
    assert not verify("Correct horse battery staple", stored)
    assert not verify("x" * (passwords.MAX_LENGTH + 1), stored)


def test_each_hash_has_its_own_salt() -> None:
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first.salt != second.salt
    assert first.key != second.key
    assert len(first.salt) == 16


def test_passwords_are_compared_after_unicode_normalization() -> None:
    stored = hash_password("ﬁve ordinary words here")  # "fi" ligature, as some keyboards type it
    assert verify("five ordinary words here", stored)


def test_older_parameters_still_verify_and_ask_for_a_rehash() -> None:
    salt = b"s" * 16
    key = hashlib.scrypt(GOOD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    old = PasswordHash(2**14, 8, 1, salt, key)
    assert verify(GOOD, PasswordHash.decode(old.encode()))
    assert not old.current


@pytest.mark.parametrize(
    "text",
    [
        "",
        "md5$abc",
        "scrypt$n=1000,r=8,p=1$AAAA$AAAA",  # N not a power of two
        "scrypt$n=32768,r=99,p=1$AAAA$AAAA",
        "scrypt$n=32768,r=8,p=1$AAAA",
    ],
)
def test_malformed_hashes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="scrypt"):
        PasswordHash.decode(text)


@pytest.mark.parametrize(
    ("password", "fine"),
    [
        (GOOD, True),
        ("fourteen chars", False),
        ("aaaaaaaaaaaaaaaaaaaa", False),
        ("nurse.joy and some words", False),  # holds the user name
        ("x" * (passwords.MAX_LENGTH + 1), False),
    ],
)
def test_password_policy(password: str, fine: bool) -> None:
    assert (password_problem(password, "nurse.joy") is None) is fine


@pytest.mark.parametrize(
    ("typed", "name"),
    [("Nurse.Joy", "nurse.joy"), (" jsmith ", "jsmith"), ("a@b-c_d", "a@b-c_d")],
)
def test_user_names_are_folded_to_lower_case(typed: str, name: str) -> None:
    assert user_name(typed) == name


@pytest.mark.parametrize("typed", ["", "-x", "a b", "../x", "x" * 65, "ü"])
def test_odd_user_names_are_refused(typed: str) -> None:
    with pytest.raises(errors.UserNameRefused):
        user_name(typed)


def test_accounts_are_added_changed_and_removed(tmp_path: Path) -> None:
    folder = tmp_path / "sending"
    accounts = Accounts(folder)
    assert accounts.all() == []
    stored = PasswordHash.decode(PINNED)
    accounts.add("nurse.joy", stored, now=100.0)
    with pytest.raises(errors.UserExists):
        accounts.add("nurse.joy", stored, now=101.0)
    assert [a.name for a in accounts.all()] == ["nurse.joy"]
    fresh = hash_password("another good password here")
    accounts.set_password("nurse.joy", fresh, now=200.0)
    changed = accounts.find("nurse.joy")
    assert changed is not None
    assert (changed.password, changed.created_at, changed.password_changed_at) == (
        fresh,
        100.0,
        200.0,
    )
    accounts.remove("nurse.joy")
    assert accounts.find("nurse.joy") is None
    with pytest.raises(errors.UserUnknown):
        accounts.remove("nurse.joy")
    with pytest.raises(errors.UserUnknown):
        accounts.set_password("nurse.joy", fresh, now=300.0)


def test_a_hash_is_renewed_only_over_the_one_checked(tmp_path: Path) -> None:
    """Renewing at sign-in (stronger parameters) compares and sets under the file's lock: a
    password set, or an account removed, since the check is never undone."""
    accounts = Accounts(tmp_path / "sending")
    checked = PasswordHash.decode(PINNED)
    accounts.add("nurse.joy", checked, now=100.0)
    renewed = hash_password(GOOD)
    assert accounts.renew_password("nurse.joy", checked, renewed)
    account = accounts.find("nurse.joy")
    assert account is not None
    assert (account.password, account.password_changed_at) == (renewed, 100.0)
    newer = hash_password("another good password here")
    accounts.set_password("nurse.joy", newer, now=200.0)
    assert not accounts.renew_password("nurse.joy", renewed, hash_password(GOOD))
    account = accounts.find("nurse.joy")
    assert account is not None
    assert (account.password, account.password_changed_at) == (newer, 200.0)
    accounts.remove("nurse.joy")
    assert not accounts.renew_password("nurse.joy", newer, hash_password(GOOD))
    assert accounts.find("nurse.joy") is None


def test_the_account_file_is_private_and_holds_no_password(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "sending")
    accounts.add("nurse.joy", hash_password(GOOD), now=1.0)
    assert stat.S_IMODE(os.stat(accounts.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(accounts.folder).st_mode) == 0o700
    text = accounts.path.read_text(encoding="utf-8")
    assert GOOD not in text
    assert json.loads(text)["accounts"][0]["password"].startswith("scrypt$n=32768,r=8,p=1$")


def test_a_running_console_sees_changes_made_by_another_process(tmp_path: Path) -> None:
    console = Accounts(tmp_path)
    assert console.find("jsmith") is None
    Accounts(tmp_path).add("jsmith", PasswordHash.decode(PINNED), now=1.0)
    assert console.find("jsmith") is not None
    Accounts(tmp_path).remove("jsmith")
    assert console.find("jsmith") is None


def test_a_damaged_account_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "console-users.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(errors.AccountsUnreadable):
        Accounts(tmp_path).find("jsmith")


def test_the_audit_log_is_chained_and_shows_a_removed_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=lambda: 1_800_000_000.0)
    log.record("sign-in", who="nurse.joy", where="10.0.0.7")
    log.record("sign-in-refused", who="nurse.joy", where="10.0.0.7", outcome="refused")
    log.record("sign-out", who="nurse.joy", where="10.0.0.7")
    assert verify_chain(log.path) == 3
    lines = log.path.read_bytes().splitlines()
    first = json.loads(lines[0])
    assert first["event_id"] == "110114"
    assert first["at"] == "2027-01-15T08:00:00.000+00:00"
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    log.path.write_bytes(lines[0] + b"\n" + lines[2] + b"\n")
    with pytest.raises(ValueError, match="line 2 does not follow line 1"):
        verify_chain(log.path)


def test_an_action_missing_from_the_event_list_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        AuditLog(tmp_path, clock=lambda: 0.0).record("unlisted", who="x", where="y")

"""Key hierarchy: known-answer vectors, independent cross-checks, locks, re-locking."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes import keys
from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.errors import KeyLockInvalid, TransferCodeError, UnwrapError
from transfer_codes.keys import (
    KeyLock,
    UnlockSecrets,
    derive_key,
    lock_with_capability,
    lock_with_code,
    manifest_key,
    new_data_key,
    object_key,
    proof_matches,
    stretch_ahead,
    stretch_capability,
    stretch_code,
    unwrap,
    verifier,
)
from transfer_codes.tokens import new_transfer_id

DATA_KEY = bytes(range(32))
TRANSFER = "0123456789ABCDEFGHJKMNPQ"
CODE = RedemptionCode(locator=5, secret=0x1_23456789_ABCDEF01)
SALT = bytes(range(16))
CAPABILITY = Capability(transfer_id=TRANSFER, secret=bytes(range(20)))


def reference_hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with HMAC-SHA256 from the standard library, independent of ``cryptography``."""
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def reference_derive(secret: bytes, purpose: str, context: bytes = b"") -> bytes:
    return reference_hkdf(secret, b"", b"trauma-relay/v1/" + purpose.encode() + b"\0" + context, 32)


def test_reference_hkdf_matches_rfc5869_case_1() -> None:
    okm = reference_hkdf(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# --- known answers ----------------------------------------------------------------------------


def test_derive_key_known_answers() -> None:
    assert derive_key(DATA_KEY, "test", b"ctx").hex() == (
        "c4d605ff1ad73edb178794c4f57ef007e252042720e9334a25b22f2c99d6268b"
    )
    assert derive_key(DATA_KEY, "test").hex() == (
        "f4e93a54db1b0980b96687f26db97581b41157be9bd5ea288673370f632f3c61"
    )
    assert derive_key(DATA_KEY, "test", b"ctx") == reference_derive(DATA_KEY, "test", b"ctx")


def test_object_and_manifest_key_known_answers() -> None:
    assert object_key(DATA_KEY, TRANSFER, 7).hex() == (
        "3193f9ab548b3b681f7d3dde6d67d1c1442eecea245723945c8720139b4cd469"
    )
    assert manifest_key(DATA_KEY, TRANSFER).hex() == (
        "b7b570928f02ad9210bc762688cecfbeb42154bb0e54d2d199288d04356f0d3e"
    )
    assert object_key(DATA_KEY, TRANSFER, 7) == reference_derive(
        DATA_KEY, "object", TRANSFER.encode() + (7).to_bytes(4, "big")
    )
    assert manifest_key(DATA_KEY, TRANSFER) == reference_derive(
        DATA_KEY, "manifest", TRANSFER.encode()
    )


def test_scrypt_stretch_known_answer_and_stdlib_cross_check() -> None:
    unlock = stretch_code(CODE, SALT)
    assert unlock.proof.hex() == (
        "2f3d08b98169d47b4e9491fd39a3d46a5a50176f77ff2f70c0e2348d2827906d"
    )
    assert unlock.kek.hex() == "0011f4bcecc6b7aefedb0c740785b260e5a70b5eb518b12e1aa7bcd2bed7c187"
    stretched = hashlib.scrypt(
        CODE.secret_bytes(), salt=SALT, n=2**16, r=8, p=1, maxmem=2**27, dklen=32
    )
    assert unlock.proof == reference_derive(stretched, "code-proof")
    assert unlock.kek == reference_derive(stretched, "code-kek")


def test_capability_stretch_known_answer() -> None:
    unlock = stretch_capability(CAPABILITY)
    assert unlock.proof.hex() == (
        "e40292b364f6c42f0cd7392b8ab5715cb0bc47ac95d2a8c170f6a5755ab03e54"
    )
    assert unlock.kek.hex() == "1125349e09b069ac0718ffed0786005f333ce3347dd7b1288b9e49736edfe784"
    assert unlock.kek == reference_derive(CAPABILITY.secret, "capability-kek", TRANSFER.encode())


def test_wrap_known_answer_and_layout() -> None:
    kek = bytes.fromhex("0011f4bcecc6b7aefedb0c740785b260e5a70b5eb518b12e1aa7bcd2bed7c187")
    wrapped = keys.wrap_key(DATA_KEY, TRANSFER, kek, nonce=bytes(12))
    assert wrapped.hex() == (
        "000000000000000000000000b8d148420dcfd4b881fc15b9c4c1f351a970b09db72905b5b5399618a1a7"
        "da0d66646ed417a93b2e00c1de7f95142e14"
    )
    aad = b"TRKW\x01" + TRANSFER.encode()
    assert AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], aad) == DATA_KEY


def test_format_v1_scrypt_parameters_are_fixed() -> None:
    assert (keys.SCRYPT_N, keys.SCRYPT_R, keys.SCRYPT_P, keys.SALT_SIZE) == (2**16, 8, 1, 16)


# --- derivation rules -------------------------------------------------------------------------


def test_subkeys_are_distinct_per_object_transfer_and_purpose() -> None:
    other = new_transfer_id()
    derived = {
        object_key(DATA_KEY, TRANSFER, 0),
        object_key(DATA_KEY, TRANSFER, 1),
        object_key(DATA_KEY, TRANSFER, 2**32 - 1),
        object_key(DATA_KEY, other, 0),
        manifest_key(DATA_KEY, TRANSFER),
        manifest_key(DATA_KEY, other),
        object_key(new_data_key(), TRANSFER, 0),
    }
    assert len(derived) == 7


@pytest.mark.parametrize("purpose", ["", "a\x00b"])
def test_derive_key_refuses_ambiguous_purposes(purpose: str) -> None:
    with pytest.raises(ValueError, match="purpose"):
        derive_key(DATA_KEY, purpose)


@pytest.mark.parametrize("index", [-1, 2**32])
def test_object_key_refuses_out_of_range_index(index: int) -> None:
    with pytest.raises(ValueError, match="index"):
        object_key(DATA_KEY, TRANSFER, index)


def test_keys_refuse_bad_transfer_ids() -> None:
    with pytest.raises(ValueError, match="transfer_id"):
        manifest_key(DATA_KEY, TRANSFER.lower())


def test_new_data_keys_are_random() -> None:
    drawn = {new_data_key() for _ in range(50)}
    assert len(drawn) == 50
    assert all(len(key) == 32 for key in drawn)


def test_verifier_and_proof_matching() -> None:
    proof = bytes(range(32))
    assert verifier(proof) == hashlib.sha256(proof).digest()
    assert proof_matches(proof, verifier(proof))
    assert not proof_matches(proof[:-1] + b"\x00", verifier(proof))
    assert not proof_matches(proof, b"")


def test_unlock_secrets_repr_hides_them() -> None:
    unlock = UnlockSecrets(proof=b"\x01" * 32, kek=b"\x02" * 32)
    assert "01" not in repr(unlock)
    assert "\\x02" not in repr(unlock)


# --- locks ------------------------------------------------------------------------------------


def test_code_lock_round_trip_and_wrong_code() -> None:
    data_key = new_data_key()
    transfer_id = new_transfer_id()
    code = RedemptionCode.generate(12)
    lock = lock_with_code(data_key, transfer_id, code)
    assert len(lock.salt) == 16
    unlock = stretch_code(RedemptionCode.parse(code.grouped().lower()), lock.salt)
    assert proof_matches(unlock.proof, lock.verifier)
    assert unwrap(lock.wrapped_key, unlock, transfer_id) == data_key

    wrong = RedemptionCode(code.locator, code.secret ^ 1)
    wrong_unlock = stretch_code(wrong, lock.salt)
    assert not proof_matches(wrong_unlock.proof, lock.verifier)
    with pytest.raises(UnwrapError):
        unwrap(lock.wrapped_key, wrong_unlock, transfer_id)
    with pytest.raises(UnwrapError):  # right code, other transfer
        unwrap(lock.wrapped_key, unlock, new_transfer_id())


def test_relock_with_a_new_code() -> None:
    """A locked transfer gets a fresh code: the new code opens it, the old code no longer does."""
    data_key = new_data_key()
    transfer_id = new_transfer_id()
    old_code = RedemptionCode.generate(3)
    old_lock = lock_with_code(data_key, transfer_id, old_code)
    new_code = RedemptionCode.generate(3)
    new_lock = lock_with_code(data_key, transfer_id, new_code)
    assert new_lock.salt != old_lock.salt

    new_unlock = stretch_code(new_code, new_lock.salt)
    assert proof_matches(new_unlock.proof, new_lock.verifier)
    assert unwrap(new_lock.wrapped_key, new_unlock, transfer_id) == data_key

    old_unlock = stretch_code(old_code, new_lock.salt)
    assert not proof_matches(old_unlock.proof, new_lock.verifier)
    with pytest.raises(UnwrapError):
        unwrap(new_lock.wrapped_key, old_unlock, transfer_id)


def test_a_secret_stretched_ahead_locks_its_code_at_the_relays_locator() -> None:
    """The secret is drawn and stretched before the relay gives the locator; the lock is the
    one a code typed later opens, with the salt of that stretching (not stretched again)."""
    data_key, transfer_id = new_data_key(), new_transfer_id()
    ahead = stretch_ahead()
    assert repr(ahead) == "StretchedSecret(<hidden>)"
    code = ahead.code(517)
    assert (code.locator, code.secret) == (517, ahead.secret)
    lock = lock_with_code(data_key, transfer_id, code, ahead)
    assert lock.salt == ahead.salt
    typed = stretch_code(RedemptionCode.parse(code.grouped()), lock.salt)
    assert proof_matches(typed.proof, lock.verifier)
    assert unwrap(lock.wrapped_key, typed, transfer_id) == data_key


def test_a_secret_stretched_ahead_is_not_used_for_another_code() -> None:
    """Given another code's stretching, the lock stretches its own code with a fresh salt."""
    data_key, transfer_id = new_data_key(), new_transfer_id()
    ahead = stretch_ahead()
    other = RedemptionCode(locator=9, secret=ahead.secret ^ 1)
    lock = lock_with_code(data_key, transfer_id, other, ahead)
    assert lock.salt != ahead.salt
    unlock = stretch_code(other, lock.salt)
    assert unwrap(lock.wrapped_key, unlock, transfer_id) == data_key
    assert not proof_matches(stretch_code(ahead.code(9), lock.salt).proof, lock.verifier)


def test_capability_lock_round_trip() -> None:
    data_key = new_data_key()
    transfer_id = new_transfer_id()
    cap = Capability.generate(transfer_id)
    lock = lock_with_capability(data_key, transfer_id, cap)
    assert lock.salt == b""
    unlock = stretch_capability(Capability.parse(cap.to_text()))
    assert proof_matches(unlock.proof, lock.verifier)
    assert unwrap(lock.wrapped_key, unlock, transfer_id) == data_key
    other = stretch_capability(Capability.generate(transfer_id))
    assert not proof_matches(other.proof, lock.verifier)
    with pytest.raises(UnwrapError):
        unwrap(lock.wrapped_key, other, transfer_id)


def test_capability_lock_refuses_another_transfers_capability() -> None:
    with pytest.raises(ValueError, match="another transfer"):
        lock_with_capability(new_data_key(), new_transfer_id(), Capability.generate(TRANSFER))


def test_every_damaged_wrapped_key_fails_to_unwrap() -> None:
    unlock = stretch_capability(CAPABILITY)
    wrapped = keys.wrap_key(DATA_KEY, TRANSFER, unlock.kek)
    assert unwrap(wrapped, unlock, TRANSFER) == DATA_KEY
    for position in range(len(wrapped)):
        damaged = bytearray(wrapped)
        damaged[position] ^= 0x01
        with pytest.raises(UnwrapError):
            unwrap(bytes(damaged), unlock, TRANSFER)
    for length in (0, 59, 61):
        with pytest.raises(UnwrapError):
            unwrap(wrapped[:length] if length < 60 else wrapped + b"\0", unlock, TRANSFER)


def test_unwrap_error_is_a_transfer_code_error_with_a_sentence() -> None:
    error = UnwrapError()
    assert isinstance(error, TransferCodeError)
    assert "does not unlock" in str(error)


@pytest.mark.parametrize("salt", [b"", bytes(15), bytes(17), bytes(32)])
def test_stretch_code_refuses_any_other_salt_length(salt: bytes) -> None:
    with pytest.raises(KeyLockInvalid):
        stretch_code(CODE, salt)


# --- KeyLock JSON -----------------------------------------------------------------------------


def sample_lock() -> KeyLock:
    return KeyLock(salt=bytes(range(16)), verifier=bytes(32), wrapped_key=bytes(range(60)))


def test_key_lock_json_round_trip() -> None:
    lock = sample_lock()
    document = lock.to_json()
    assert document == {
        "salt": base64.b64encode(lock.salt).decode(),
        "verifier": base64.b64encode(lock.verifier).decode(),
        "wrapped_key": base64.b64encode(lock.wrapped_key).decode(),
    }
    assert KeyLock.from_json(document) == lock
    capability_lock = KeyLock(salt=b"", verifier=bytes(32), wrapped_key=bytes(60))
    assert capability_lock.to_json()["salt"] == ""
    assert KeyLock.from_json(capability_lock.to_json()) == capability_lock


@pytest.mark.parametrize(
    "change",
    [
        {"salt": None},
        {"extra": "AA=="},
        {"salt": 5},
        {"salt": "AAECAwQFBgcICQoLDA0ODw"},  # missing padding
        {"salt": "AAECAwQFBgcICQoLDA0ODw==="},
        {"salt": "AAECAwQFBgcICQoLDA0O Dw=="},
        {"salt": "AAECAwQFBgcICQoLDA0O-w=="},
        {"salt": "AAECAwQFBgcICQoLDA0O\u00e9w=="},
        {"salt": base64.b64encode(bytes(15)).decode()},
        {"verifier": base64.b64encode(bytes(31)).decode()},
        {"wrapped_key": base64.b64encode(bytes(61)).decode()},
    ],
)
def test_key_lock_from_json_is_strict(change: dict[str, object]) -> None:
    document: dict[str, object] = dict(sample_lock().to_json())
    for name, value in change.items():
        if value is None:
            del document[name]
        else:
            document[name] = value
    with pytest.raises(KeyLockInvalid):
        KeyLock.from_json(document)


def test_key_lock_invalid_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="malformed"):
        KeyLock(salt=b"", verifier=b"", wrapped_key=b"")

"""Key hierarchy: a random data key per transfer, unlocked by a code or a QR capability.

::

    data_key (32 random bytes; never derived from a code)
      |- object_key(data_key, transfer_id, index)  HKDF purpose "object",   context id || u32 BE
      |- manifest_key(data_key, transfer_id)       HKDF purpose "manifest", context id
      '- wrapped under a KEK in a KeyLock (one per code, one per capability):
           code:       s = scrypt(code.secret_bytes(), salt, N=2**16, r=8, p=1, 32 bytes)
                       proof = derive_key(s, "code-proof"), kek = derive_key(s, "code-kek")
           capability: proof = derive_key(cap.secret, "capability-proof", transfer_id)
                       kek   = derive_key(cap.secret, "capability-kek", transfer_id)
           verifier = SHA-256(proof)                       (what the relay stores)
           wrapped_key = nonce(12, random) || AES-256-GCM(kek, nonce, data_key,
                                                 aad = b"TRKW" || 0x01 || transfer_id)

The relay stores salt, verifier and wrapped key. A receiver sends the proof; the relay compares
``SHA-256(proof)`` with the verifier (counting failures, at most 10 per transfer) and only then
returns the wrapped key, which the receiver unwraps with the KEK. Proof and KEK are independent
HKDF outputs, so the proof the relay sees tells it nothing about the KEK.

Scrypt parameters are constants of format v1: N = 2**16, r = 8, p = 1, 32-byte output, 16-byte
salt. The relay supplies only the salt; no other party can weaken the stretch, and
``stretch_code`` refuses any salt that is not exactly 16 bytes.

Cost of an offline attack on a typed code by someone holding a full copy of the relay's data
(salt, verifier, wrapped key):

* The unknown part of a code is its 65-bit secret: the 10-bit locator is public (and not even a
  KDF input) and the check symbol is a function of the other symbols, so neither adds anything.
  The secret is uniform, so exhaustive search succeeds on average after (2**65 + 1) / 2, i.e.
  about 2**64 guesses.
* Testing a guess against the verifier or the wrapped key needs s, and s is only obtainable by
  running scrypt on the guess with that lock's salt: one scrypt evaluation per guess. So the
  expected cost is >= 2**64 scrypt evaluations. Each evaluation fills and reads 128 * r * N
  bytes = 64 MiB and computes 4 * N * r = 2**21 Salsa20/8 cores; 2**64 of them is 2**85
  Salsa20/8 cores. Even at a million evaluations per second (far beyond any known rig at
  64 MiB each), 2**64 / 10**6 s is about 585,000 years.
* Each lock has a fresh random salt (re-locking with a new code draws a new one), so no
  precomputation helps and work against one transfer says nothing about another: the bound
  holds per transfer.
* Online, the relay locks a transfer after 10 failures: success probability <= 10 / 2**65.

A capability carries 160 random bits and is only run through HKDF; exhaustive search needs
about 2**159 HKDF evaluations, which is infeasible without any stretching.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from transfer_codes.capability import Capability
from transfer_codes.codes import RedemptionCode
from transfer_codes.errors import KeyLockInvalid, UnwrapError
from transfer_codes.tokens import is_transfer_id
from transfer_codes.wire import b64decode_text, b64encode_text

KEY_SIZE = 32
INFO_PREFIX = b"trauma-relay/v1/"

SCRYPT_N = 2**16
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_LENGTH = 32
SALT_SIZE = 16

VERIFIER_SIZE = 32
WRAP_NONCE_SIZE = 12
WRAP_TAG_SIZE = 16
WRAPPED_KEY_SIZE = WRAP_NONCE_SIZE + KEY_SIZE + WRAP_TAG_SIZE  # 60 bytes
WRAP_AAD_PREFIX = b"TRKW\x01"

OBJECT_INDEX_LIMIT = 2**32


def new_data_key() -> bytes:
    """32 random bytes: the AES-256 data key of one transfer."""
    return secrets.token_bytes(KEY_SIZE)


def derive_key(secret: bytes, purpose: str, context: bytes = b"") -> bytes:
    """HKDF-SHA256 (RFC 5869), no salt, 32-byte output,
    info = b"trauma-relay/v1/" + purpose (UTF-8) + b"\\x00" + context.

    ``purpose`` must be non-empty and contain no NUL, so (purpose, context) pairs cannot collide.
    """
    if not purpose or "\x00" in purpose:
        raise ValueError("purpose must be a non-empty string without NUL")
    info = INFO_PREFIX + purpose.encode("utf-8") + b"\x00" + context
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(secret)


def _transfer_id_bytes(transfer_id: str) -> bytes:
    if not is_transfer_id(transfer_id):
        raise ValueError("transfer_id must be 24 uppercase Crockford base32 symbols")
    return transfer_id.encode("ascii")


def object_key(data_key: bytes, transfer_id: str, index: int) -> bytes:
    """Subkey sealing object ``index`` (0 <= index < 2**32) of ``transfer_id``."""
    if not 0 <= index < OBJECT_INDEX_LIMIT:
        raise ValueError("object index must be in 0..2**32-1")
    context = _transfer_id_bytes(transfer_id) + index.to_bytes(4, "big")
    return derive_key(data_key, "object", context)


def manifest_key(data_key: bytes, transfer_id: str) -> bytes:
    """Key sealing the manifest records of ``transfer_id``."""
    return derive_key(data_key, "manifest", _transfer_id_bytes(transfer_id))


@dataclass(frozen=True, repr=False)
class UnlockSecrets:
    """What a code or capability yields: ``proof`` (shown to the relay) and ``kek`` (kept)."""

    proof: bytes
    kek: bytes

    def __repr__(self) -> str:
        return "UnlockSecrets(<hidden>)"


def stretch_code(code: RedemptionCode, transfer_salt: bytes) -> UnlockSecrets:
    """Scrypt (N=2**16, r=8, p=1) of the code's secret with the lock's 16-byte salt.

    Raises ``KeyLockInvalid`` if the salt is not exactly 16 bytes (parameters are never
    negotiable). Takes about 0.1-0.3 s and 64 MiB.
    """
    if len(transfer_salt) != SALT_SIZE:
        raise KeyLockInvalid(
            "The key record for this transfer has an invalid salt. Contact support."
        )
    stretched = Scrypt(
        salt=transfer_salt, length=SCRYPT_LENGTH, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P
    ).derive(code.secret_bytes())
    return UnlockSecrets(
        proof=derive_key(stretched, "code-proof"), kek=derive_key(stretched, "code-kek")
    )


def stretch_capability(cap: Capability) -> UnlockSecrets:
    """HKDF only (the 160-bit secret needs no stretching), bound to the capability's transfer."""
    context = _transfer_id_bytes(cap.transfer_id)
    return UnlockSecrets(
        proof=derive_key(cap.secret, "capability-proof", context),
        kek=derive_key(cap.secret, "capability-kek", context),
    )


def verifier(proof: bytes) -> bytes:
    """SHA-256 of the proof: what the relay stores and compares against."""
    return hashlib.sha256(proof).digest()


def proof_matches(proof: bytes, stored_verifier: bytes) -> bool:
    """Constant-time check that ``verifier(proof) == stored_verifier``."""
    return hmac.compare_digest(verifier(proof), stored_verifier)


@dataclass(frozen=True)
class KeyLock:
    """What the relay stores for one way of unlocking a transfer.

    ``salt`` is 16 bytes for a code lock and empty for a capability lock; ``verifier`` is
    32 bytes; ``wrapped_key`` is 60 bytes. Construction validates lengths (``KeyLockInvalid``).
    """

    salt: bytes
    verifier: bytes
    wrapped_key: bytes

    def __post_init__(self) -> None:
        for value in (self.salt, self.verifier, self.wrapped_key):
            if not isinstance(value, bytes):
                raise KeyLockInvalid()
        if len(self.salt) not in (0, SALT_SIZE):
            raise KeyLockInvalid()
        if len(self.verifier) != VERIFIER_SIZE or len(self.wrapped_key) != WRAPPED_KEY_SIZE:
            raise KeyLockInvalid()

    def to_json(self) -> dict[str, str]:
        """``{"salt", "verifier", "wrapped_key"}`` as standard base64 with padding."""
        return {
            "salt": b64encode_text(self.salt),
            "verifier": b64encode_text(self.verifier),
            "wrapped_key": b64encode_text(self.wrapped_key),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> KeyLock:
        """Inverse of ``to_json``. Exactly those three keys, strict base64 strings, valid lengths;
        anything else raises ``KeyLockInvalid``."""
        if not isinstance(d, Mapping) or set(d) != {"salt", "verifier", "wrapped_key"}:
            raise KeyLockInvalid()
        fields: dict[str, bytes] = {}
        for name in ("salt", "verifier", "wrapped_key"):
            value = d[name]
            if not isinstance(value, str):
                raise KeyLockInvalid()
            try:
                fields[name] = b64decode_text(value)
            except ValueError:  # not base64, or not ASCII
                raise KeyLockInvalid() from None
        return cls(**fields)


def _wrap_aad(transfer_id: str) -> bytes:
    return WRAP_AAD_PREFIX + _transfer_id_bytes(transfer_id)


def wrap_key(data_key: bytes, transfer_id: str, kek: bytes, nonce: bytes | None = None) -> bytes:
    """``nonce || AES-256-GCM(kek, nonce, data_key, aad)``; a random nonce unless one is given
    (only known-answer tests give one)."""
    if len(data_key) != KEY_SIZE:
        raise ValueError("data key must be 32 bytes")
    if nonce is None:
        nonce = secrets.token_bytes(WRAP_NONCE_SIZE)
    if len(nonce) != WRAP_NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")
    return nonce + AESGCM(kek).encrypt(nonce, data_key, _wrap_aad(transfer_id))


@dataclass(frozen=True, repr=False)
class StretchedSecret:
    """A code's secret, drawn and stretched with a fresh salt before its transfer exists
    (`stretch_ahead`). Only the secret and the salt go into scrypt, not the locator, so the
    stretching can run while the sender does other work (reading the study); the relay's
    locator then completes the code (`code`), and `lock_with_code` uses this stretching for
    that code. Used for one lock only."""

    secret: int
    salt: bytes
    unlock: UnlockSecrets

    def code(self, locator: int) -> RedemptionCode:
        """The code of this secret at ``locator`` (the relay's, for the new transfer)."""
        return RedemptionCode(locator=locator, secret=self.secret)

    def __repr__(self) -> str:
        return "StretchedSecret(<hidden>)"


def stretch_ahead() -> StretchedSecret:
    """A fresh uniformly random code secret and salt, stretched (about 0.1-0.3 s: run it in a
    thread while other work goes on; scrypt does not hold the GIL)."""
    code = RedemptionCode.generate(0)  # the locator is not a KDF input
    salt = secrets.token_bytes(SALT_SIZE)
    return StretchedSecret(secret=code.secret, salt=salt, unlock=stretch_code(code, salt))


def lock_with_code(
    data_key: bytes,
    transfer_id: str,
    code: RedemptionCode,
    ahead: StretchedSecret | None = None,
) -> KeyLock:
    """A lock that ``code`` opens, with a fresh 16-byte salt (also how a transfer is re-locked).
    ``ahead``: the stretching of ``code``'s secret done already, with its own fresh salt; used
    only if it is that secret's (else the code is stretched here)."""
    if ahead is not None and hmac.compare_digest(
        ahead.code(code.locator).secret_bytes(), code.secret_bytes()
    ):
        salt, unlock = ahead.salt, ahead.unlock
    else:
        salt = secrets.token_bytes(SALT_SIZE)
        unlock = stretch_code(code, salt)
    return KeyLock(
        salt=salt,
        verifier=verifier(unlock.proof),
        wrapped_key=wrap_key(data_key, transfer_id, unlock.kek),
    )


def lock_with_capability(data_key: bytes, transfer_id: str, cap: Capability) -> KeyLock:
    """A lock that ``cap`` opens (salt b""). ``cap.transfer_id`` must equal ``transfer_id``."""
    if cap.transfer_id != transfer_id:
        raise ValueError("capability belongs to another transfer")
    unlock = stretch_capability(cap)
    return KeyLock(
        salt=b"",
        verifier=verifier(unlock.proof),
        wrapped_key=wrap_key(data_key, transfer_id, unlock.kek),
    )


def unwrap(wrapped_key: bytes, unlock: UnlockSecrets, transfer_id: str) -> bytes:
    """The 32-byte data key, or ``UnwrapError`` if this unlock does not open this lock (wrong
    code or capability, wrong transfer, or damaged data)."""
    if len(wrapped_key) != WRAPPED_KEY_SIZE or len(unlock.kek) != KEY_SIZE:
        raise UnwrapError()
    nonce, sealed = wrapped_key[:WRAP_NONCE_SIZE], wrapped_key[WRAP_NONCE_SIZE:]
    try:
        return AESGCM(unlock.kek).decrypt(nonce, sealed, _wrap_aad(transfer_id))
    except InvalidTag:
        raise UnwrapError() from None

"""Console passwords: checked against a short policy, hashed with scrypt (memory-hard), and
verified in constant time. Pure functions; the account file is `site_agent.accounts`.

Parameters: N = 2**15, r = 8, p = 1 uses 128 * N * r = 32 MiB and about a tenth of a second
per hash on a workstation, the interactive-login setting of RFC 7914 section 2 scaled to today
(OWASP's password storage guidance lists N = 2**17 with 128 MiB as its first choice; 32 MiB
keeps two sign-ins at once cheap for a small agent machine). The parameters are stored with
each hash, so raising them later leaves existing hashes verifiable.

Policy (NIST SP 800-63B-4, 3.1.1.2): at least 15 characters for a password that is the only
factor, no composition rules, no expiry; normalized to Unicode NFKC before hashing so the same
password typed on another keyboard layout still matches.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

N = 2**15
R = 8
P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_MEMORY = 64 * 1024 * 1024  # bytes; hashlib refuses parameters needing more
MIN_LENGTH = 15  # characters
MAX_LENGTH = 1024  # characters; longer input is refused, never truncated
SCHEME = "scrypt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True)
class PasswordHash:
    """One stored hash: `scrypt$n=32768,r=8,p=1$<salt>$<key>` (unpadded base64)."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def encode(self) -> str:
        params = f"n={self.n},r={self.r},p={self.p}"
        return f"{SCHEME}${params}${_b64(self.salt)}${_b64(self.key)}"

    @classmethod
    def decode(cls, text: str) -> PasswordHash:
        """`ValueError` for anything not written by `encode` with sane parameters."""
        match = re.fullmatch(
            r"scrypt\$n=([0-9]{1,9}),r=([0-9]{1,3}),p=([0-9]{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)",
            text,
        )
        if not match:
            raise ValueError("not an scrypt password hash")
        n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
            raise ValueError("scrypt parameters out of range")
        return cls(n, r, p, _unb64(match.group(4)), _unb64(match.group(5)))

    @property
    def current(self) -> bool:
        """Whether this hash uses today's parameters (else: rehash at the next sign-in)."""
        return (self.n, self.r, self.p, len(self.key)) == (N, R, P, KEY_BYTES)


def _normalized(password: str) -> bytes:
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        _normalized(password), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=MAX_MEMORY
    )


def password_problem(password: str, user: str) -> str | None:
    """Why `password` may not be used for `user` (a sentence), or None."""
    length = len(unicodedata.normalize("NFKC", password))
    if length < MIN_LENGTH:
        return (
            f"A password needs at least {MIN_LENGTH} characters; this one has {length}. A few "
            "ordinary words in a row are easy to type and hard to guess."
        )
    if length > MAX_LENGTH:
        return f"A password can have at most {MAX_LENGTH} characters."
    if user.casefold() in password.casefold() or len(set(password)) < 4:
        return "A password must not contain the user name or repeat a few characters."
    return None


def hash_password(password: str, *, salt: bytes | None = None) -> PasswordHash:
    """A new hash of `password` with today's parameters and a fresh random salt (`salt` is
    for known-answer tests only). About 0.1 s and 32 MiB: call it off the event loop."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    return PasswordHash(N, R, P, salt, _derive(password, salt, N, R, P, KEY_BYTES))


def verify(password: str, stored: PasswordHash) -> bool:
    """Whether `password` is the one `stored` was made from; constant-time comparison."""
    if len(password) > MAX_LENGTH:
        return False
    derived = _derive(password, stored.salt, stored.n, stored.r, stored.p, len(stored.key))
    return hmac.compare_digest(derived, stored.key)


@functools.cache
def decoy() -> PasswordHash:
    """What an unknown user name is verified against, so that a wrong name takes as long as a
    wrong password and sign-in timing does not tell which names exist."""
    return hash_password(secrets.token_urlsafe(24))

"""The console's local accounts, kept in `<agent folder>/console-users.json` (0600, written
atomically): user name, scrypt hash (`site_agent.passwords`) and when each was made. No
password, hashed or not, ever leaves this file.

The command line changes the file (`trauma-relay sender user add NAME`) while the console may
be running; changes take each other's lock, and the console re-reads the file when it changed,
so an added user can sign in and a removed one is signed out without a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from site_agent import errors, file_lock
from site_agent.local_state import write_atomically
from site_agent.passwords import PasswordHash

FILE = "console-users.json"
LOCK = ".console-users.lock"
VERSION = 1
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")


def user_name(text: str) -> str:
    """`text` as a user name (lower case, trimmed); `UserNameRefused` if it cannot be one."""
    name = text.strip().lower()
    if not _NAME.fullmatch(name):
        raise errors.UserNameRefused()
    return name


@dataclass(frozen=True)
class Account:
    name: str
    password: PasswordHash
    created_at: float  # seconds since the epoch
    password_changed_at: float


class Accounts:
    """The account file of one agent folder (`<state>/sending` or `<state>/receiving`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / FILE
        self._seen: tuple[int, int, int] | None = None
        self._cache: dict[str, Account] = {}

    # -- reading (the console, every request) ---------------------------------------------------

    def find(self, name: str) -> Account | None:
        """The account called `name` as the file holds it now, or None."""
        return self._current().get(name)

    def all(self) -> list[Account]:
        return sorted(self._current().values(), key=lambda a: a.name)

    def _current(self) -> dict[str, Account]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._cache = None, {}
            return self._cache
        except OSError as e:
            raise errors.AccountsUnreadable() from e
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            self._cache, self._seen = self._read(), seen
        return self._cache

    def _read(self) -> dict[str, Account]:
        try:
            body = json.loads(self.path.read_bytes())
            return {
                item["name"]: Account(
                    name=str(item["name"]),
                    password=PasswordHash.decode(str(item["password"])),
                    created_at=float(item["created_at"]),
                    password_changed_at=float(item["password_changed_at"]),
                )
                for item in body["accounts"]
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise errors.AccountsUnreadable() from e

    # -- changing (the command line; the console only renews a hash) --------------------------

    def add(self, name: str, password: PasswordHash, now: float) -> Account:
        with self._changing() as accounts:
            if name in accounts:
                raise errors.UserExists()
            accounts[name] = Account(name, password, now, now)
            return accounts[name]

    def set_password(self, name: str, password: PasswordHash, now: float) -> None:
        with self._changing() as accounts:
            if name not in accounts:
                raise errors.UserUnknown()
            old = accounts[name]
            accounts[name] = Account(name, password, old.created_at, now)

    def renew_password(self, name: str, checked: PasswordHash, fresh: PasswordHash) -> bool:
        """Replace `name`'s hash by `fresh` (the same password, hashed with today's parameters:
        not a new password, so `password_changed_at` stays), only if the file still holds
        `checked`, the hash the password was checked against. A password set (`user password`)
        or an account removed since wins. Whether the hash was replaced."""
        with file_lock.held(self.folder / LOCK):
            accounts = self._read()
            account = accounts.get(name)
            if account is None or not hmac.compare_digest(
                account.password.encode(), checked.encode()
            ):
                return False
            accounts[name] = dataclasses.replace(account, password=fresh)
            write_atomically(self.path, _encoded(accounts))
            return True

    def remove(self, name: str) -> None:
        with self._changing() as accounts:
            if accounts.pop(name, None) is None:
                raise errors.UserUnknown()

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Account]]:
        """The accounts, under the lock; written back if the block ends without an error."""
        with file_lock.held(self.folder / LOCK):
            accounts = self._read()
            yield accounts
            write_atomically(self.path, _encoded(accounts))


def _encoded(accounts: dict[str, Account]) -> bytes:
    body = {
        "version": VERSION,
        "accounts": [
            {
                "name": a.name,
                "password": a.password.encode(),
                "created_at": a.created_at,
                "password_changed_at": a.password_changed_at,
            }
            for a in sorted(accounts.values(), key=lambda a: a.name)
        ],
    }
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")

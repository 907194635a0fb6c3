"""Console sessions, kept in memory on the server: the browser holds only a random id.

A session starts anonymous when the sign-in page is first shown (so that the sign-in form has a
CSRF token too) and a new one, with a new id, replaces it at sign-in (an id seen before sign-in
is never the signed-in one). A signed-in session ends after `idle_timeout` without activity, or
`MAX_AGE` after sign-in, whichever comes first. Pure: the time is passed in, nothing is written;
a restart signs everyone out.

Both kinds are bounded in number, each apart: anyone can open the sign-in page, so anonymous
sessions past `MAX_ANONYMOUS` forget only each other (the longest idle first), never a signed-in
one. Past `MAX_SESSIONS` signed in, a new sign-in ends the longest idle signed-in session, which
is said once (`take_crowded_out`, to audit it) and remembered, as any ended session is.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

HOURS = 3600.0
MAX_AGE = 12 * HOURS  # a shift: sign in again at the start of each
ANONYMOUS_IDLE = 12 * HOURS  # a sign-in page left open all night still works
EXPIRED_KEPT = 8 * HOURS  # how long an ended session is remembered, to say why it ended
MAX_SESSIONS = 2000  # signed in; past it a new sign-in ends the longest idle (audited)
MAX_ANONYMOUS = 2000  # sign-in pages open; past it the longest idle are forgotten
ID_BYTES = 32


def _key(session_id: str) -> bytes:
    """The book keys sessions by the SHA-256 of their id, so finding one compares digests,
    never the secret the browser sent (a lookup by digest is as good as a constant-time
    comparison: timing can at most tell how a digest starts)."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


class Ended(Enum):
    """Why a session the browser still names is gone."""

    IDLE = "idle"
    MAX_AGE = "max-age"
    CROWDED_OUT = "crowded-out"  # more signed in than MAX_SESSIONS: the longest idle ends
    # Begun before the user's password was changed (a reason, not a password: hence the noqa).
    PASSWORD_CHANGED = "password-changed"  # noqa: S105


@dataclass
class Session:
    id: str
    csrf_token: str
    user: str | None  # None until sign-in
    started: float
    last_seen: float
    # What a page says once to this session, by the page's path, with when it was left: the
    # page a POST redirects to (`site_agent.console.notices`). Ends with the session.
    notices: dict[str, tuple[float, object]] = field(default_factory=dict)


@dataclass(frozen=True)
class Expired:
    """A signed-in session that ended without sign-out; `first` only when this is the request
    that found it ended (to audit it once)."""

    user: str
    why: Ended
    first: bool = False


class SessionBook:
    def __init__(
        self,
        idle_timeout: float,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_anonymous: int = MAX_ANONYMOUS,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_anonymous = max_anonymous
        # By `_key(id)`, each kind apart: least recently seen first.
        self._signed_in: OrderedDict[bytes, Session] = OrderedDict()
        self._anonymous: OrderedDict[bytes, Session] = OrderedDict()
        self._ended: OrderedDict[bytes, tuple[Expired, float]] = OrderedDict()
        self._crowded_out: list[Expired] = []

    def __len__(self) -> int:
        return len(self._signed_in) + len(self._anonymous)

    def _kind(self, session: Session) -> OrderedDict[bytes, Session]:
        return self._anonymous if session.user is None else self._signed_in

    def start(self, user: str | None, now: float) -> Session:
        """A new session with fresh random id and CSRF token."""
        session = Session(
            id=secrets.token_urlsafe(ID_BYTES),
            csrf_token=secrets.token_urlsafe(ID_BYTES),
            user=user,
            started=now,
            last_seen=now,
        )
        self._kind(session)[_key(session.id)] = session
        while len(self._anonymous) > self.max_anonymous:
            self._anonymous.popitem(last=False)
        while len(self._signed_in) > self.max_sessions:
            key, oldest = self._signed_in.popitem(last=False)
            if oldest.user is not None:
                self._ended[key] = (Expired(oldest.user, Ended.CROWDED_OUT), now)
                self._crowded_out.append(Expired(oldest.user, Ended.CROWDED_OUT, first=True))
        return session

    def take_crowded_out(self) -> list[Expired]:
        """The signed-in sessions `start` has ended to make room since last asked (to audit
        each once)."""
        taken, self._crowded_out = self._crowded_out, []
        return taken

    def find(
        self, session_id: str, now: float, *, activity: bool = True
    ) -> Session | Expired | None:
        """The live session `session_id`, its `last_seen` moved to `now` when this is the
        user's `activity` (not a page refreshing itself); `Expired` if it has just ended or
        ended lately; None if unknown."""
        key = _key(session_id)
        session = self._signed_in.get(key) or self._anonymous.get(key)
        if session is None:
            ended = self._ended.get(key)
            return ended[0] if ended else None
        why = self._ended_why(session, now)
        if why is not None:
            self.end(session_id)
            if session.user is None:
                return None
            self._ended[key] = (Expired(session.user, why), now)
            return Expired(session.user, why, first=True)
        if activity:
            session.last_seen = now
            self._kind(session).move_to_end(key)
        return session

    def end(self, session_id: str) -> Session | None:
        """Forget a session (sign-out, or replaced at sign-in); the session, if it was live."""
        key = _key(session_id)
        self._ended.pop(key, None)
        return self._signed_in.pop(key, None) or self._anonymous.pop(key, None)

    def end_user(self, user: str) -> list[Session]:
        """End every session of `user` (their account was removed); the sessions ended, to
        audit each once."""
        keys = [key for key, s in self._signed_in.items() if s.user == user]
        return [self._signed_in.pop(key) for key in keys]

    def end_begun_before(self, user: str, changed: float, now: float) -> list[Session]:
        """End every session of `user` begun before `changed` (when their password was
        changed: whoever signed in with the old one is signed out); the sessions ended, to
        audit each once. Each is remembered, so that its browser is told why."""
        keys = [k for k, s in self._signed_in.items() if s.user == user and s.started < changed]
        for key in keys:
            self._ended[key] = (Expired(user, Ended.PASSWORD_CHANGED), now)
        return [self._signed_in.pop(key) for key in keys]

    def sweep(self, now: float) -> list[Expired]:
        """Drop sessions that have ended; the signed-in ones among them (to audit their end)."""
        dropped = []
        for key, session in [*self._signed_in.items(), *self._anonymous.items()]:
            why = self._ended_why(session, now)
            if why is None:
                continue
            del self._kind(session)[key]
            if session.user is not None:
                dropped.append(Expired(session.user, why, first=True))
                self._ended[key] = (Expired(session.user, why), now)
        for key, (_, since) in list(self._ended.items()):
            if now - since > EXPIRED_KEPT or len(self._ended) > self.max_sessions:
                del self._ended[key]
        return dropped

    def _ended_why(self, session: Session, now: float) -> Ended | None:
        if session.user is None:
            return Ended.IDLE if now - session.last_seen >= ANONYMOUS_IDLE else None
        if now - session.started >= MAX_AGE:
            return Ended.MAX_AGE
        if now - session.last_seen >= self.idle_timeout:
            return Ended.IDLE
        return None

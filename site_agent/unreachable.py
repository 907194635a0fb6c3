"""Why the relay could not be reached, in words a nurse can act on (never a library's class name).

Pure: it only looks at the exception and what caused it (`__cause__`, `__context__`, and the
`os_error` that aiohttp's connector errors carry).
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator

import aiohttp

UNKNOWN = "the network failed"

# In order: the first kind found anywhere in the chain names the failure. A certificate error
# is also an SSL error, and a DNS failure also a connector error, so the narrow ones come first.
_WORDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    (
        (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError),
        "its security certificate was not accepted",
    ),
    ((aiohttp.ClientSSLError, ssl.SSLError), "the secure connection could not be set up"),
    ((aiohttp.ClientConnectorDNSError, socket.gaierror), "name not found"),
    ((ConnectionRefusedError,), "connection refused (nothing answers at that address and port)"),
    ((TimeoutError,), "timed out (no answer)"),
    ((ConnectionResetError, aiohttp.ClientConnectionResetError), "the connection was reset"),
    ((aiohttp.ServerDisconnectedError,), "the relay closed the connection before answering"),
    ((aiohttp.ClientPayloadError,), "the answer was cut short"),
)
_ERRNO_WORDS = {
    errno.ENETUNREACH: "the network is unreachable",
    errno.EHOSTUNREACH: "the relay's computer is unreachable",
    errno.ENETDOWN: "the network is down",
}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        e = pending.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nested in (getattr(e, "os_error", None), e.__cause__, e.__context__):
            if isinstance(nested, BaseException):
                pending.append(nested)


# A connection that could not be opened (refused, no route, name not found, the TLS handshake,
# the connect timeout): nothing of the request was sent.
_NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def unsent(error: BaseException) -> bool:
    """Whether a request failed before it could reach the relay (no connection was opened),
    so the relay cannot have acted on it."""
    return any(isinstance(e, _NOT_CONNECTED) for e in _chain(error))


def reason(error: BaseException) -> str:
    """Why a request to the relay failed, as a short clause: "connection refused (...)",
    "name not found", "timed out (no answer)"... or `UNKNOWN`."""
    chain = list(_chain(error))
    for kinds, words in _WORDS:
        if any(isinstance(e, kinds) for e in chain):
            return words
    for e in chain:
        if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[e.errno]
    return UNKNOWN

"""The relay's address as the sites give it (`--relay`): checked once, before anything is sent.

A relay address is a scheme (http or https), a host and an optional port: the relay serves its
API and the patient's page from the root of that address. Anything else is refused with what
is expected: a user name or password (a secret in the address would end up in logs and shell
history), a path, a query or a fragment.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from site_agent import errors

EXAMPLE = "https://relay.example or http://127.0.0.1:8750"


def _refuse(text: str, why: str) -> errors.BadRelayAddress:
    return errors.BadRelayAddress(
        f"{text!r} is not a relay address: {why}. Give the scheme, the host and, if needed, "
        f"the port, e.g. {EXAMPLE}."
    )


def relay_address(text: str) -> str:
    """`text` as a relay base URL without a trailing slash, e.g. ``https://relay.example``.

    Raises `BadRelayAddress` saying what is wrong and what is expected."""
    given = text.strip()
    if "://" not in given:
        raise _refuse(text, "it does not start with https:// (or http://)")
    try:
        parts = urlsplit(given)
        port = parts.port  # ValueError when not a number from 0 to 65535
    except ValueError as e:
        raise _refuse(text, f"it cannot be read ({e})") from e
    if parts.scheme.lower() not in ("http", "https"):
        raise _refuse(text, "it must start with https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise _refuse(text, "it must not hold a user name or password")
    if not parts.hostname:
        raise _refuse(text, "the host is missing")
    if parts.path not in ("", "/"):
        raise _refuse(text, f"it must not hold a path ({parts.path})")
    if parts.query or parts.fragment or given.endswith(("?", "#")):
        raise _refuse(text, "it must not hold anything after ? or #")
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise _refuse(text, "the port after the colon is missing or 0")
    # As given, so that a resumed push finds the transfers it recorded under this address.
    return given.rstrip("/")


def is_loopback(address: str) -> bool:
    """Whether the relay at `address` (checked by `relay_address`) is on this machine: browsers
    treat http://localhost and loopback addresses as secure, and nothing crosses the network."""
    host = urlsplit(address).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure(address: str) -> None:
    """Refuse a plain-http relay that is not on this machine (`CleartextRelay`): this site's
    credential and the wrapped keys would cross the network unencrypted, and patients' phones
    refuse the authorization page without HTTPS."""
    if urlsplit(address).scheme == "http" and not is_loopback(address):
        raise errors.CleartextRelay(
            f"The relay address {address} is plain http:// to another machine: this site's "
            "credential would travel over the network unencrypted, and patients' phones refuse "
            "the authorization page without HTTPS. Give the relay's https:// address (see the "
            "README); only a relay on this machine may be reached over http://."
        )

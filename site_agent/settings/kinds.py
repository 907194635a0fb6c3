"""The kinds of value a setting holds: how each is read from TOML, from text (the environment and
`--set`) and written back into TOML, and what an error says was expected.

A setting's kind comes from its type annotation: plain `str`, `int`, `float`, `bool`, `Path`,
`HostPort` and `X | None` have one each; `Annotated` aliases (`Port`, `Duration`, `Url`,
`AETitle`, `Count`) carry a narrower one. Parsers raise `Invalid` with the expectation only; the
loader adds the setting's name and where the value came from.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES
DAYS = 24 * HOURS


class Invalid(ValueError):
    """A value that does not fit its setting: `str(e)` completes "name: ..."."""


@dataclass(frozen=True)
class HostPort:
    """A TCP listening address, written `HOST:PORT` (`[::1]:8760` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Only this machine can connect (127.0.0.0/8, ::1 or localhost)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class Kind(Generic[T]):
    """How one kind of value is read and written. `expected` completes "expected ...", in an
    error that then quotes what it got."""

    expected = "a value"

    def from_toml(self, raw: object) -> T:
        """A value as `tomllib` gave it; strict about the TOML type."""
        if isinstance(raw, str):
            return self.from_text(raw)
        raise self.refuse(raw)

    def from_text(self, text: str) -> T:
        """A value typed in the environment or after `--set section.key=`."""
        raise NotImplementedError

    def to_toml(self, value: T) -> str:
        """The TOML literal for `value`, which `from_toml` reads back as `value`."""
        return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string

    def refuse(self, raw: object) -> Invalid:
        return Invalid(f"expected {self.expected}, got {raw!r}")


class Text(Kind[str]):
    expected = "text"

    def from_text(self, text: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise Invalid(f"expected {self.expected} without control characters, got {text!r}")
        return text


class Whole(Kind[int]):
    def __init__(self, low: int = 0, high: int = 2**63 - 1) -> None:
        self.low, self.high = low, high
        self.expected = f"a whole number from {low} to {high}"

    def from_toml(self, raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise self.refuse(raw)
        return self._bounded(raw, raw)

    def from_text(self, text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,19}", text.strip()):
            raise self.refuse(text)
        return self._bounded(int(text), text)

    def _bounded(self, value: int, raw: object) -> int:
        if not self.low <= value <= self.high:
            raise self.refuse(raw)
        return value

    def to_toml(self, value: int) -> str:
        return str(value)


class Number(Kind[float]):
    expected = "a number"

    def from_toml(self, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.refuse(raw)
        return self._finite(float(raw), raw)

    def from_text(self, text: str) -> float:
        try:
            return self._finite(float(text), text)
        except ValueError:
            raise self.refuse(text) from None

    def _finite(self, value: float, raw: object) -> float:
        if not math.isfinite(value):  # NaN compares false with every bound
            raise self.refuse(raw)
        return value

    def to_toml(self, value: float) -> str:
        return repr(float(value))


_FLAG_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_FLAG_WORDS |= {"false": False, "no": False, "off": False, "0": False}
_SPAN_UNITS = {"d": DAYS, "h": HOURS, "m": MINUTES, "s": SECONDS}


class Flag(Kind[bool]):
    expected = "true or false"

    def from_toml(self, raw: object) -> bool:
        if not isinstance(raw, bool):
            raise self.refuse(raw)
        return raw

    def from_text(self, text: str) -> bool:
        try:
            return _FLAG_WORDS[text.strip().lower()]
        except KeyError:
            raise self.refuse(text) from None

    def to_toml(self, value: bool) -> str:
        return "true" if value else "false"


class FilePath(Kind[Path]):
    expected = "a file or folder path"

    def from_text(self, text: str) -> Path:
        if not text or "\0" in text:
            raise self.refuse(text)
        return Path(text).expanduser()


class Maybe(Kind[T | None], Generic[T]):
    """`X | None`: the empty string means "not set" (TOML has no null)."""

    def __init__(self, inner: Kind[T]) -> None:
        self.inner = inner
        self.expected = f"{inner.expected}, or empty"

    def from_toml(self, raw: object) -> T | None:
        return None if raw == "" else self.inner.from_toml(raw)

    def from_text(self, text: str) -> T | None:
        return None if text == "" else self.inner.from_text(text)

    def to_toml(self, value: T | None) -> str:
        return '""' if value is None else self.inner.to_toml(value)


class Listen(Kind[HostPort]):
    expected = "HOST:PORT"

    def from_text(self, text: str) -> HostPort:
        match = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]\s]+)):([0-9]{1,5})", text.strip())
        if not match:
            raise self.refuse(text)
        port = int(match.group(3))
        if not 1 <= port <= 65535:
            raise Invalid(f"expected {self.expected} with a port from 1 to 65535, got {text!r}")
        return HostPort(match.group(1) or match.group(2), port)


class Span(Kind[float]):
    """A duration in seconds, written with its unit: `90s`, `30m`, `2h`, `1d` (a bare TOML
    number is seconds)."""

    expected = "a duration such as 90s, 30m or 2h"

    def from_toml(self, raw: object) -> float:
        if isinstance(raw, bool):
            raise self.refuse(raw)
        if isinstance(raw, int | float):
            return self._sane(float(raw), raw)
        return super().from_toml(raw)

    def from_text(self, text: str) -> float:
        match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([dhms]?)", text.strip().lower())
        if not match:
            raise self.refuse(text)
        return self._sane(float(match.group(1)) * _SPAN_UNITS[match.group(2) or "s"], text)

    def _sane(self, seconds: float, raw: object) -> float:
        if not (math.isfinite(seconds) and 0 <= seconds <= 365 * DAYS):
            raise self.refuse(raw)
        return seconds

    def to_toml(self, value: float) -> str:
        for unit in ("d", "h", "m"):
            count = value / _SPAN_UNITS[unit]
            if count >= 1 and count == int(count):
                return f'"{int(count)}{unit}"'
        text = repr(float(value))
        if "e" in text:  # repr's exponent form, which from_text does not read
            text = f"{value:.9f}".rstrip("0").rstrip(".")
        return f'"{text.removesuffix(".0")}s"'


class WebAddress(Kind[str]):
    """An http(s) URL without user name, password, query or fragment; empty means not set."""

    expected = "an http:// or https:// address"

    def from_text(self, text: str) -> str:
        if text == "":
            return text
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.refuse(text)
        if parts.username is not None or parts.password is not None:
            raise Invalid(
                "must not hold a user name or password (credentials go in a file, never in the "
                "configuration)"
            )
        if parts.query or parts.fragment:
            raise Invalid(f"expected {self.expected} without ? or #, got {text!r}")
        return text.strip().rstrip("/")


class ApplicationEntity(Kind[str]):
    """A DICOM AE title (PS3.5 6.2): 1 to 16 characters of the default repertoire, no
    backslash, not only spaces; leading and trailing spaces are not significant."""

    expected = "an AE title of 1 to 16 letters, digits, spaces or - _ ."

    def from_text(self, text: str) -> str:
        value = text.strip()
        if not re.fullmatch(r"[A-Za-z0-9 _.\-]{1,16}", value):
            raise self.refuse(text)
        return value


class ApplicationEntities(Kind[tuple[str, ...]]):
    """Several AE titles: a TOML list of strings, or in text separated by commas. Empty: none."""

    expected = 'AE titles, e.g. ["CT1", "ER_PACS"] (or CT1,ER_PACS where a list cannot be written)'

    def from_toml(self, raw: object) -> tuple[str, ...]:
        if isinstance(raw, list):
            if not all(isinstance(v, str) for v in raw):
                raise self.refuse(raw)
            return self._titles(raw)
        return super().from_toml(raw)

    def from_text(self, text: str) -> tuple[str, ...]:
        return self._titles([v for v in text.split(",") if v.strip()])

    def _titles(self, values: list[str]) -> tuple[str, ...]:
        one = ApplicationEntity()
        return tuple(dict.fromkeys(one.from_text(v) for v in values))

    def to_toml(self, value: tuple[str, ...]) -> str:
        return json.dumps(list(value), ensure_ascii=False)  # a JSON list of strings is TOML


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks(Kind[tuple[Network, ...]]):
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/24`, `::1`): a TOML list of strings, or in
    text separated by commas. Empty: none. A network with host bits set (`10.0.0.5/24`) is
    refused rather than widened: it names neither one address nor one network for sure, and
    these name who is trusted; for the same reason, so is a network of every address
    (`0.0.0.0/0`, `::/0`): anyone could claim to be anyone."""

    expected = (
        'addresses or networks, not one of every address (0.0.0.0/0, ::/0), e.g. ["127.0.0.1", '
        '"10.0.0.0/24"]'
    )

    def from_toml(self, raw: object) -> tuple[Network, ...]:
        if isinstance(raw, list):
            if not all(isinstance(v, str) for v in raw):
                raise self.refuse(raw)
            return self._networks(raw, raw)
        return super().from_toml(raw)

    def from_text(self, text: str) -> tuple[Network, ...]:
        return self._networks([v for v in text.split(",") if v.strip()], text)

    def _networks(self, values: list[str], raw: object) -> tuple[Network, ...]:
        try:
            read = tuple(dict.fromkeys(ipaddress.ip_network(v.strip()) for v in values))
        except ValueError:
            raise self.refuse(raw) from None
        if any(n.prefixlen == 0 for n in read):
            raise self.refuse(raw)
        return read

    def to_toml(self, value: tuple[Network, ...]) -> str:
        return json.dumps([str(v) for v in value])


Port = Annotated[int, Whole(1, 65535)]
Count = Annotated[int, Whole(1, 64)]
Duration = Annotated[float, Span()]
Url = Annotated[str, WebAddress()]
AETitle = Annotated[str, ApplicationEntity()]
AETitles = Annotated[tuple[str, ...], ApplicationEntities()]
NetworkList = Annotated[tuple[Network, ...], Networks()]

PLAIN: dict[Any, Kind[Any]] = {
    str: Text(),
    int: Whole(),
    float: Number(),
    bool: Flag(),
    Path: FilePath(),
    HostPort: Listen(),
}

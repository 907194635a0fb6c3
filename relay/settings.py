"""The relay's settings as the operator writes them: `[section]` and `key` in a TOML file, in
`--set section.key=value`, or in `TRAUMA_RELAY_SECTION_KEY`. Each `Setting` names the
`RelayConfig` field it sets, its kind (how a value is read, bounded and written back), its unit
and the sentence `--print-config` prints above it. Adding a setting is one `RelayConfig` field
and one line in `SETTINGS`.

No setting is a secret yet. One that ever is gets `secret=True`: `--set` then refuses it (argv
is readable by every user of the machine), and it comes from the configuration file (mode 600)
or the environment; better still, the setting names a file holding it, as the TLS key's does.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.addresses import networks
from transfer_codes.manifest import MAX_RECORD_SIZE

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES

MAX_EXPIRY = 14 * 24 * HOURS  # the longest a transfer may wait for its trauma center
MAX_SWEEP_INTERVAL = 1 * HOURS  # expired transfers must not linger much longer than this
_TOML_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})


class Invalid(ValueError):
    """A value that does not fit its setting: `str(e)` completes "SETTING must be ..."."""


def toml_string(text: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise Invalid("text without control characters")
    return '"' + text.translate(_TOML_STRING) + '"'


def text_value(text: str) -> object:
    """A value typed after `--set section.key=` or in the environment: a TOML value when it
    reads as one (`3`, `true`, `["::1"]`, `"x"`), else the text itself (`json`, `/srv/relay`)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


class Kind:
    """How one kind of value is read from TOML, bounded and written back; `expected` completes
    "must be ..." in the error."""

    expected = "a value"
    textual = False  # a value that is text by nature: `--set k=2024` means the text "2024"

    def read(self, raw: object) -> Any:
        raise NotImplementedError

    def write(self, value: Any) -> str:
        raise NotImplementedError

    def refuse(self, raw: object) -> Invalid:
        return Invalid(f"must be {self.expected}, not {raw!r}")


class Whole(Kind):
    def __init__(self, low: int, high: int = 2**63 - 1) -> None:
        self.low, self.high = low, high
        self.expected = f"a whole number from {low} to {high}"

    def read(self, raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not self.low <= raw <= self.high:
            raise self.refuse(raw)
        return raw

    def write(self, value: int) -> str:
        return str(value)


class Number(Kind):
    """A finite number in `unit` (stored times `scale`, in seconds); NaN is refused, since it
    compares false with every bound."""

    def __init__(
        self, low: float, high: float, unit: str, scale: float = 1.0, *, above: bool = False
    ) -> None:
        self.low, self.high, self.scale, self.above = low, high, scale, above
        bounds = f"more than {low:g} and at most" if above else f"from {low:g} to"
        self.expected = f"{bounds} {high:g} {unit}"

    def read(self, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.refuse(raw)
        value = float(raw) * self.scale
        low, high = self.low * self.scale, self.high * self.scale
        if not (math.isfinite(value) and (low < value if self.above else low <= value)):
            raise self.refuse(raw)
        if value > high:
            raise self.refuse(raw)
        return value

    def write(self, value: float) -> str:
        shown = value / self.scale
        return str(int(shown)) if shown.is_integer() and abs(shown) < 2**53 else repr(shown)


class Text(Kind):
    textual = True

    def __init__(self, expected: str = "text", pattern: str = r".*", empty: bool = False) -> None:
        self.expected, self.pattern, self.empty = expected, pattern, empty

    def read(self, raw: object) -> str | None:
        if not isinstance(raw, str):
            raise self.refuse(raw)
        if raw == "" and self.empty:
            return None
        if not re.fullmatch(self.pattern, raw) or any(ord(c) < 32 for c in raw):
            raise self.refuse(raw)
        return raw

    def write(self, value: str | None) -> str:
        return toml_string(value or "")


class Choice(Text):
    def __init__(self, *options: str) -> None:
        super().__init__(" or ".join(repr(o) for o in options), "|".join(map(re.escape, options)))


class FilePath(Kind):
    """A path, or "" for none."""

    textual = True
    expected = 'a file or folder path, or "" for none'

    def read(self, raw: object) -> Path | None:
        if not isinstance(raw, str) or "\0" in raw:
            raise self.refuse(raw)
        return Path(raw).expanduser() if raw else None

    def write(self, value: Path | None) -> str:
        return toml_string("" if value is None else str(value))


class Addresses(Kind):
    """A list of addresses or networks (`"10.0.0.0/24"`); one alone may be given as text.
    `everyone`: whether a network of every address (`0.0.0.0/0`, `::/0`) may be one of them;
    not for those trusted to name the client (a proxy), whom anyone could then claim to be."""

    textual = True
    expected = 'a list of addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/24"]'

    def __init__(self, *, everyone: bool = True) -> None:
        self.everyone = everyone
        if not everyone:
            self.expected = (
                "a list of addresses or networks, not one of every address (0.0.0.0/0, ::/0), "
                'e.g. ["127.0.0.1", "10.0.0.0/24"]'
            )

    def read(self, raw: object) -> tuple[str, ...]:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self.refuse(raw)
        try:
            read = networks(items)
        except ValueError:
            raise self.refuse(raw) from None
        if not self.everyone and any(n.prefixlen == 0 for n in read):
            raise self.refuse(raw)
        return tuple(items)

    def write(self, value: tuple[str, ...]) -> str:
        return "[" + ", ".join(toml_string(v) for v in value) + "]"


class Listen(Kind):
    """`HOST:PORT` (`[::1]:8750` for IPv6), stored as the fields `host` and `port`."""

    textual = True
    expected = "HOST:PORT, e.g. 127.0.0.1:8750 or [::1]:8750"

    def read(self, raw: object) -> tuple[str, int]:
        if not isinstance(raw, str):
            raise self.refuse(raw)
        host, sep, port = raw.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise self.refuse(raw)
        return host.strip("[]") or "127.0.0.1", int(port)

    def write(self, value: tuple[str, int]) -> str:
        host, port = value
        return toml_string(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    field: str  # the RelayConfig field; "host:port" for the two fields `listen` sets
    kind: Kind
    help: str
    legacy: str | None = None  # its name in the flat relay.toml of the data directory
    legacy_env: str | None = None  # its older environment variable
    # A secret (none yet): refused in `--set`, where every user of the machine can read it in
    # the process list; given in the configuration file (mode 600) or the environment.
    secret: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"TRAUMA_RELAY_{self.section}_{self.key}".upper()

    def get(self, values: Mapping[str, Any]) -> Any:
        if self.field == "host:port":
            return (values["host"], values["port"])
        return values[self.field]

    def put(self, values: dict[str, Any], value: Any) -> None:
        if self.field == "host:port":
            values["host"], values["port"] = value
        else:
            values[self.field] = value


SECTIONS: dict[str, str] = {
    "server": "Where and how the relay serves.",
    "storage": "Where the relay keeps its database, sealed objects and keys.",
    "limits": "What one sending site and one transfer may hold, and free disk kept back.",
    "throttles": "Guessing throttles across transfers: failed redemptions and phone links "
    "that lead nowhere, counted in a window.",
    "retention": "How long transfers and their ciphertext are kept.",
    "audit": "The audit trail.",
    "metrics": "Prometheus metrics at /metrics.",
    "log": "The relay's log (standard error, and a file if one is named).",
}

_COUNT = Whole(1, 1_000_000)
_BYTES = Whole(1024)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "server",
        "listen",
        "host:port",
        Listen(),
        "The address and TCP port to listen on (--listen).",
    ),
    Setting(
        "server",
        "public_url",
        "public_url",
        Text("an http:// or https:// address, or empty", r"https?://\S+", empty=True),
        "The address patients' phones and the sites use; empty: made from listen.",
        legacy="public_url",
        legacy_env="TRAUMA_RELAY_PUBLIC_URL",
    ),
    Setting(
        "server",
        "tls_certificate",
        "tls_certificate",
        FilePath(),
        "Serve HTTPS with this PEM certificate (and its chain); empty: plain HTTP (behind "
        "a TLS-terminating proxy, or on this machine only).",
        legacy="tls_certificate",
    ),
    Setting(
        "server",
        "tls_key",
        "tls_key",
        FilePath(),
        "The PEM key of tls_certificate (a file readable by the relay only).",
        legacy="tls_key",
    ),
    Setting(
        "server",
        "trusted_proxies",
        "trusted_proxies",
        Addresses(everyone=False),
        "TLS-terminating proxies in front of the relay (addresses or networks): from them "
        "the client's address is taken from X-Forwarded-For.",
        legacy="trusted_proxies",
    ),
    Setting(
        "server",
        "shutdown_timeout_seconds",
        "shutdown_timeout",
        Number(0, 3600, "seconds"),
        "On SIGTERM, how long requests under way (an upload "
        "mid-body) may take to finish before they are cut off unacknowledged.",
    ),
    Setting(
        "server",
        "body_idle_timeout_seconds",
        "body_idle_timeout",
        Number(0, 3600, "seconds", above=True),
        "A request body that stops arriving for this long is refused (408), nothing past the "
        "last acknowledged byte kept: a stalled client does not hold a connection for ever.",
    ),
    Setting(
        "storage",
        "data_dir",
        "data_dir",
        FilePath(),
        "The data folder (--data); it must be given here or with --data.",
    ),
    Setting(
        "storage",
        "metadata_url",
        "metadata_url",
        Text(
            "a postgresql:// URL without a password, or empty",
            r"postgres(ql)?://\S+",
            empty=True,
        ),
        "Where transfers, sites and the audit trail are kept: empty is the embedded SQLite "
        "file in the data folder; postgresql://USER@HOST:PORT/DB is a PostgreSQL database "
        "several relay instances share (its password never goes in the URL).",
        legacy="metadata_url",
        legacy_env="TRAUMA_RELAY_METADATA_URL",
    ),
    Setting(
        "storage",
        "metadata_password_file",
        "metadata_password_file",
        FilePath(),
        "A file (readable by the relay only) holding the PostgreSQL password; empty: libpq's "
        "PGPASSFILE or ~/.pgpass.",
        legacy="metadata_password_file",
        legacy_env="TRAUMA_RELAY_METADATA_PASSWORD_FILE",
    ),
    Setting(
        "storage",
        "objects_url",
        "objects_url",
        Text("an s3://BUCKET/PREFIX address, or empty", r"s3://\S+", empty=True),
        "Where the sealed objects are kept: empty is the data folder's objects/ folder; "
        "s3://BUCKET/PREFIX is an S3-compatible bucket several relay instances share.",
        legacy="objects_url",
        legacy_env="TRAUMA_RELAY_OBJECTS_URL",
    ),
    Setting(
        "storage",
        "s3_endpoint_url",
        "s3_endpoint_url",
        Text("an http:// or https:// address, or empty", r"https?://\S+", empty=True),
        "The S3 service of MinIO or Ceph RGW (without credentials); empty: AWS S3.",
        legacy="s3_endpoint_url",
    ),
    Setting(
        "storage",
        "s3_region",
        "s3_region",
        Text("a region name such as eu-west-1, or empty", r"[A-Za-z0-9-]+", empty=True),
        "The bucket's region; empty: the AWS default.",
        legacy="s3_region",
    ),
    Setting(
        "storage",
        "s3_credentials_file",
        "s3_credentials_file",
        FilePath(),
        "A shared AWS credentials file (mode 600); empty: the standard AWS environment "
        "variables and files.",
        legacy="s3_credentials_file",
    ),
    Setting(
        "limits",
        "max_open_transfers_per_site",
        "max_open_transfers_per_site",
        _COUNT,
        "Transfers one sending site may hold open (not yet delivered, revoked or expired).",
        legacy="max_open_transfers_per_site",
    ),
    Setting(
        "limits",
        "site_quota_bytes",
        "site_quota_bytes",
        _BYTES,
        "Sealed bytes one sending site may hold over its open transfers.",
        legacy="site_quota_bytes",
    ),
    Setting(
        "limits",
        "max_transfer_bytes",
        "max_transfer_bytes",
        _BYTES,
        "Sealed bytes of one transfer.",
        legacy="max_transfer_bytes",
    ),
    Setting(
        "limits",
        "max_object_bytes",
        "max_object_size",
        _BYTES,
        "Bytes of one sealed object (one image).",
        legacy="max_object_bytes",
        legacy_env="TRAUMA_RELAY_MAX_OBJECT_BYTES",
    ),
    Setting(
        "limits",
        "max_manifest_record_bytes",
        "max_manifest_record",
        Whole(1, MAX_RECORD_SIZE),
        "Bytes of one manifest record (receiving sites refuse larger ones).",
    ),
    Setting(
        "limits",
        "disk_reserve_bytes",
        "disk_reserve_bytes",
        Whole(0),
        "Free disk space kept back: below it new uploads are refused.",
        legacy="disk_reserve_bytes",
    ),
    Setting(
        "throttles",
        "guess_window_minutes",
        "guess_window",
        Number(1, 1440, "minutes", MINUTES),
        "The window failed guesses are counted in.",
        legacy="guess_window_minutes",
    ),
    Setting(
        "throttles",
        "guess_limit_per_site",
        "guess_limit_site",
        _COUNT,
        "Failed guesses per receiving site in the window.",
        legacy="guess_limit_per_site",
    ),
    Setting(
        "throttles",
        "guess_limit_per_address",
        "guess_limit_address",
        _COUNT,
        "Failed redemptions per client address in the window; phone links that lead nowhere "
        "are counted apart, per client address, with the same limit.",
        legacy="guess_limit_per_address",
    ),
    Setting(
        "throttles",
        "guess_limit_global",
        "guess_limit_global",
        _COUNT,
        "Failed redemptions relay-wide in the window (phone links are not counted here: "
        "anyone can send one).",
        legacy="guess_limit_global",
    ),
    Setting(
        "retention",
        "expiry_hours",
        "expiry",
        Number(0, MAX_EXPIRY / HOURS, "hours", HOURS, above=True),
        "A transfer not redeemed by then is deleted (at most 14 days).",
        legacy="expiry_hours",
        legacy_env="TRAUMA_RELAY_EXPIRY_HOURS",
    ),
    Setting(
        "retention",
        "delivered_grace_minutes",
        "delivered_grace",
        Number(0, MAX_EXPIRY / MINUTES, "minutes", MINUTES),
        "How long a delivered "
        "transfer keeps its ciphertext after the receipt, so a trauma center can fetch it "
        "again.",
        legacy="delivered_grace_minutes",
    ),
    Setting(
        "retention",
        "sweep_seconds",
        "sweep_interval",
        Number(0, MAX_SWEEP_INTERVAL, "seconds", above=True),
        "How often expired and delivered transfers are purged.",
        legacy="sweep_seconds",
        legacy_env="TRAUMA_RELAY_SWEEP_SECONDS",
    ),
    Setting(
        "audit",
        "refusals_audited_per_minute",
        "refusals_audited_per_minute",
        _COUNT,
        "Refused site credentials audited one by one per client address in a minute; "
        "past that they are counted and summed up in the next record.",
    ),
    Setting(
        "metrics",
        "allowed",
        "metrics_allowed",
        Addresses(),
        "Who may read /metrics (addresses or networks).",
        legacy="metrics_allowed",
    ),
    Setting(
        "log",
        "file",
        "log_file",
        FilePath(),
        "Also write the log to this file (--log-file); empty: standard error only.",
        legacy="log_file",
    ),
    Setting(
        "log",
        "format",
        "log_format",
        Choice("text", "json"),
        '"json": one JSON object a line (time, level, logger, message and fields such as '
        "method, route, status, duration_ms, transfer_id).",
    ),
    Setting(
        "log",
        "level",
        "log_level",
        Choice("debug", "info", "warning", "error"),
        "The least severe level logged.",
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
BY_LEGACY: dict[str, Setting] = {s.legacy: s for s in SETTINGS if s.legacy}

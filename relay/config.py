"""The relay's one typed configuration object, `RelayConfig`, and where its values come from.

Layer over layer: the defaults below; `relay.toml` in the data folder (its flat keys, kept from
before sections); the file `--config` names (`[section]` tables, `relay.settings`); the
environment (`TRAUMA_RELAY_SECTION_KEY`, and the four older `TRAUMA_RELAY_*` variables); the
command line's own options (`--data`, `--listen`, ...); `--set section.key=value`. Everything is
validated at start-up; anything invalid stops the relay with a sentence naming the setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import textwrap
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from relay.addresses import Network, networks
from relay.errors import ConfigError
from relay.settings import (
    BY_LEGACY,
    BY_NAME,
    HOURS,
    MAX_EXPIRY,
    MINUTES,
    SECTIONS,
    SETTINGS,
    Invalid,
    Setting,
    text_value,
)
from relay.storage.s3 import S3Location
from transfer_codes.manifest import MAX_RECORD_SIZE

__all__ = ["HOURS", "MAX_EXPIRY", "MINUTES", "ConfigError", "RelayConfig", "load", "render"]

MIB = 1024 * 1024
GIB = 1024 * MIB

Clock = Callable[[], float]


@dataclass(frozen=True)
class RelayConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8750
    public_url: str | None = None
    expiry: float = 72 * HOURS
    sweep_interval: float = 1 * MINUTES
    # How long a delivered transfer keeps its ciphertext and key locks after the receipt (so a
    # trauma center that lost the end of its import can still fetch it again); then purged.
    delivered_grace: float = 1 * HOURS
    max_object_size: int = 4 * GIB
    # Readers refuse larger records (`transfer_codes.manifest`), so accepting them is pointless.
    max_manifest_record: int = MAX_RECORD_SIZE
    log_file: Path | None = None
    # HTTPS: the PEM certificate (with its chain) and key files; None serves plain HTTP.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # What one sending site may hold open: transfers not yet delivered, revoked or expired (and
    # to any one trauma center at most a quarter of its locators, so no sender can use them
    # up), and sealed bytes stored for them; one transfer's bytes; free disk space kept back.
    max_open_transfers_per_site: int = 200
    site_quota_bytes: int = 500 * GIB
    max_transfer_bytes: int = 20 * GIB
    disk_reserve_bytes: int = 1 * GIB
    # Addresses (or networks) of TLS-terminating proxies in front of the relay: from them, the
    # client's address is taken from X-Forwarded-For. Empty: the peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Who may read /metrics (addresses or networks); by default this machine only.
    metrics_allowed: tuple[str, ...] = ("127.0.0.1", "::1")
    # Guessing throttles across transfers (relay.throttle): failed redemptions and phone links
    # that lead nowhere, per receiving site, per client address and relay-wide, in a window.
    guess_window: float = 15 * MINUTES
    guess_limit_site: int = 30
    guess_limit_address: int = 30
    guess_limit_global: int = 300
    # Refused site credentials audited one by one per client address in a minute; past that,
    # counted and summed up in the next record from that address.
    refusals_audited_per_minute: int = 20
    # Where transfers, sites and the audit trail are kept: None is the embedded SQLite file in
    # the data directory; "postgresql://USER@HOST:PORT/DB" is a PostgreSQL database several
    # relay instances can share (relay.storage.postgres). Its password never goes in the URL:
    # it is read from `metadata_password_file`, or libpq's PGPASSFILE / ~/.pgpass.
    metadata_url: str | None = None
    metadata_password_file: Path | None = None
    # On SIGTERM: how long requests under way may take to finish (aiohttp's shutdown_timeout).
    shutdown_timeout: float = 30.0
    # A request body that stops arriving for this long is refused (408): a stalled or
    # deliberately slow client does not hold a connection and an object's write lock.
    body_idle_timeout: float = 60.0
    log_format: str = "text"  # or "json": one object a line (relay.logs)
    log_level: str = "info"
    # Sealed objects in an S3-compatible bucket (s3://BUCKET/PREFIX) instead of the data
    # directory's objects/ folder; the endpoint of MinIO or Ceph RGW (None: AWS S3), the region,
    # and a shared credentials file (None: the standard AWS environment variables and files).
    objects_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_credentials_file: Path | None = None
    clock: Clock = field(default=time.time, repr=False, compare=False)

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return networks(self.trusted_proxies)

    @property
    def database(self) -> Path:
        return self.data_dir / "relay.sqlite3"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_certificate else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def cleartext_to_the_network(self) -> bool:
        """Whether the relay serves plain HTTP on an address other machines can reach, with no
        TLS proxy named in front of it (`trusted_proxies`)."""
        if self.tls_certificate is not None or self.trusted_proxies:
            return False
        if self.host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return True

    def validated(self) -> RelayConfig:
        """This configuration, or `ConfigError` naming the setting to fix (`section.key`)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for s in SETTINGS:
            try:  # through its TOML form, as if it had been written in a file
                s.kind.read(tomllib.loads(f"v = {s.kind.write(s.get(values))}")["v"])
            except (Invalid, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"{s.name} {e}.") from e
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ConfigError(
                "server.tls_certificate and server.tls_key go together: give both, or neither."
            )
        self._validate_metadata_url()
        self._validate_object_store()
        return self

    def _validate_metadata_url(self) -> None:
        if self.metadata_url is None:
            if self.metadata_password_file is not None:
                raise ConfigError("storage.metadata_password_file goes with storage.metadata_url.")
            return
        if not self.metadata_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "storage.metadata_url (TRAUMA_RELAY_METADATA_URL) must be a PostgreSQL URL like "
                "postgresql://relay@db.example:5432/relay."
            )
        try:
            parts = urlsplit(self.metadata_url)
        except ValueError as e:
            raise ConfigError("storage.metadata_url is not a valid URL.") from e
        # asyncpg takes a password from the query string too (`?password=`, and the TLS client
        # key's `?sslpassword=`), names decoded as it decodes them.
        in_query = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        if "sslpassword" in in_query:
            raise ConfigError(
                "storage.metadata_url may not hold the password of the TLS client key "
                "(sslpassword): keep the key without one, in a file readable by the relay's user "
                "only (sslkey=FILE)."
            )
        if parts.password is not None or "password" in in_query:
            raise ConfigError(
                "storage.metadata_url may not hold the database password: put it in a file "
                "readable by the relay's user only and name that file in "
                "storage.metadata_password_file (or TRAUMA_RELAY_METADATA_PASSWORD_FILE), or use "
                "PGPASSFILE."
            )

    def _validate_object_store(self) -> None:
        if self.objects_url is None:
            for name in ("s3_endpoint_url", "s3_region", "s3_credentials_file"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"storage.{name} is for an S3 bucket: set storage.objects_url too."
                    )
            return
        S3Location.parse(self.objects_url)
        endpoint = self.s3_endpoint_url
        if endpoint is not None and (
            not endpoint.startswith(("http://", "https://")) or "@" in endpoint
        ):
            raise ConfigError(
                "storage.s3_endpoint_url must be the http:// or https:// address of the S3 service "
                "(without credentials), e.g. https://minio.example.org:9000."
            )
        if self.s3_credentials_file is not None and not self.s3_credentials_file.is_file():
            raise ConfigError(
                f"storage.s3_credentials_file {self.s3_credentials_file} is not a file."
            )


def _suggest(name: str) -> str:
    near = difflib.get_close_matches(name, list(BY_NAME), n=1)
    return f" Did you mean {near[0]}?" if near else ""


@dataclass(frozen=True)
class _Given:
    """One value for a setting, and where it came from (named in errors)."""

    setting: Setting
    raw: object
    source: str


def _from_table(table: dict[str, Any], source: str, *, legacy: bool) -> list[_Given]:
    """The values of a TOML document: `[section]` tables, and in the data folder's own
    relay.toml (`legacy`) also the flat keys it has always had."""
    given = []
    for key, value in table.items():
        if legacy and key in BY_LEGACY:
            given.append(_Given(BY_LEGACY[key], value, f"{source}: {key} ({BY_LEGACY[key].name})"))
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            hint = (
                f" (now [{BY_LEGACY[key].section}] {BY_LEGACY[key].key})"
                if key in BY_LEGACY
                else ""
            )
            raise ConfigError(
                f"{source}: unknown setting {key!r}{hint}. Sections: {', '.join(SECTIONS)}."
            )
        for inner, raw in value.items():
            setting = BY_NAME.get(f"{key}.{inner}")
            if setting is None:
                raise ConfigError(
                    f"{source}: unknown setting {key}.{inner}.{_suggest(f'{key}.{inner}')}"
                )
            given.append(_Given(setting, raw, f"{source}: {setting.name}"))
    return given


def _read_file(path: Path, *, legacy: bool) -> list[_Given]:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"The configuration file {path} cannot be read ({e.strerror}).") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    return _from_table(table, str(path), legacy=legacy)


def _from_text(setting: Setting, text: str, source: str) -> _Given:
    raw = text_value(text)
    if setting.kind.textual and not isinstance(raw, str | list):
        raw = text  # `--set storage.data_dir=2024` names the folder "2024"
    return _Given(setting, raw, source)


def _from_environment(env: Mapping[str, str]) -> list[_Given]:
    given = []
    for s in SETTINGS:
        for var in (s.legacy_env, s.env):
            if var and var in env:
                given.append(_from_text(s, env[var], f"{var} ({s.name})"))
    return given


def _from_assignments(assignments: Sequence[str]) -> list[_Given]:
    given = []
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        setting = BY_NAME.get(name.strip())
        if not sep or setting is None:
            known = "" if sep else " (give it as --set section.key=value)"
            raise ConfigError(
                f"--set {assignment}: unknown setting {name.strip()!r}{known}."
                f"{_suggest(name.strip())} trauma-relay relay --print-config lists them all."
            )
        if setting.secret:
            raise ConfigError(
                f"{setting.name} is a secret: give it in the configuration file (mode 600) or "
                f"in {setting.env}, not with --set, where any user can read it."
            )
        given.append(_from_text(setting, text.strip(), f"--set {setting.name}"))
    return given


def _apply(values: dict[str, Any], given: list[_Given]) -> None:
    for g in given:
        try:
            g.setting.put(values, g.setting.kind.read(g.raw))
        except Invalid as e:
            raise ConfigError(f"{g.source} {e}.") from e


@dataclass(frozen=True)
class Sources:
    """Where settings come from besides the defaults and the data folder's relay.toml: the
    command line's own options (`data_dir`, `listen`, and `flags` such as `--log-file` by
    field), the environment (`os.environ` when None), `--config FILE` and `--set`."""

    data_dir: Path | None = None
    listen: str | None = None
    environ: Mapping[str, str] | None = None
    config_file: Path | None = None
    assignments: Sequence[str] = ()
    flags: Mapping[str, object] = field(default_factory=dict)


def resolve(sources: Sources) -> dict[str, Any]:
    """Every setting's value (by `RelayConfig` field; `data_dir` may be None), each layer
    over the one before: defaults, the data folder's relay.toml, the config file, the
    environment, the command line's own options, then `--set`."""
    env = os.environ if sources.environ is None else sources.environ
    values: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(RelayConfig)}
    values["data_dir"] = None
    upper = [] if sources.config_file is None else _read_file(sources.config_file, legacy=False)
    upper += _from_environment(env)
    if sources.data_dir is not None:
        upper.append(_Given(BY_NAME["storage.data_dir"], str(sources.data_dir), "--data"))
    if sources.listen is not None:
        upper.append(_Given(BY_NAME["server.listen"], sources.listen, "--listen"))
    by_field = {s.field: s for s in SETTINGS}
    for name, value in sources.flags.items():
        upper.append(_Given(by_field[name], str(value), f"--{name.replace('_', '-')}"))
    upper += _from_assignments(sources.assignments)
    _apply(values, [g for g in upper if g.setting.name == "storage.data_dir"])
    lower: list[_Given] = []
    folder: Path | None = values["data_dir"]
    if folder is not None and (folder / "relay.toml").exists():
        lower = _read_file(folder / "relay.toml", legacy=True)
        if any(g.setting.name == "storage.data_dir" for g in lower):
            raise ConfigError(f"{folder / 'relay.toml'}: storage.data_dir cannot be set there.")
    _apply(values, lower + upper)
    return values


def load(
    data_dir: Path | None = None,
    listen: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    config_file: Path | None = None,
    assignments: Sequence[str] = (),
    flags: Mapping[str, object] | None = None,
    **overrides: Any,
) -> RelayConfig:
    """The relay's validated configuration from these sources (`Sources`), then `overrides`
    by field (tests give a clock, for example)."""
    sources = Sources(data_dir, listen, environ, config_file, assignments, flags or {})
    return configured(sources, **overrides)


def configured(sources: Sources, **overrides: Any) -> RelayConfig:
    """The relay's validated configuration (`resolve`, then `overrides` by field)."""
    values = resolve(sources)
    if values["data_dir"] is None:
        raise ConfigError(
            "No data folder: give --data DIR, or data_dir in the [storage] section of --config."
        )
    return RelayConfig(**{**values, **overrides}).validated()


def check(values: Mapping[str, Any]) -> None:
    """Validate `values` (from `resolve`) as `load` does, with or without a data folder (for
    `--print-config`); `ConfigError` naming the setting."""
    RelayConfig(**{**values, "data_dir": values["data_dir"] or Path()}).validated()


def render(values: Mapping[str, Any]) -> str:
    """A complete TOML configuration holding `values` (from `resolve`), each setting under a
    comment saying what it does, what else sets it, and its default where it differs; read
    back with `--config`, it gives the same values."""
    defaults: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(RelayConfig)}
    defaults["data_dir"] = None
    lines = [
        "# The relay's configuration (trauma-relay relay --config FILE). Every setting is",
        "# optional except storage.data_dir (or --data). Any one can be given on the command line",
        "# as --set section.key=value or in the environment as TRAUMA_RELAY_SECTION_KEY; those win",
        "# over this file, which wins over relay.toml in the data folder.",
    ]
    for section, help_text in SECTIONS.items():
        lines += ["", f"[{section}]"]
        lines += [f"# {line}" for line in textwrap.wrap(help_text, 94)]
        for s in SETTINGS:
            if s.section != section:
                continue
            lines.append("")
            lines += [f"# {line}" for line in textwrap.wrap(s.help, 94)]
            default = s.kind.write(s.get(defaults))
            current = s.kind.write(s.get(values))
            if current != default:
                lines.append(f"# default: {s.key} = {default}")
            lines.append(f"{s.key} = {current}")
    return "\n".join(lines) + "\n"

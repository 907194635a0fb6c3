"""The relay's one typed configuration object, with units in the names of its defaults.

Loaded from an optional TOML file (`relay.toml` in the data directory) and then environment
variables (`TRAUMA_RELAY_*`), validated at start-up; anything invalid stops the relay.
"""

from __future__ import annotations

import math
import os
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from relay.addresses import Network, networks
from relay.errors import ConfigError
from relay.storage.s3 import S3Location
from transfer_codes.manifest import MAX_RECORD_SIZE

SECONDS = 1.0
MINUTES = 60 * SECONDS
HOURS = 60 * MINUTES
MIB = 1024 * 1024
GIB = 1024 * MIB

MAX_EXPIRY = 14 * 24 * HOURS  # the longest a transfer may wait for its trauma center
MAX_SWEEP_INTERVAL = 1 * HOURS  # expired transfers must not linger much longer than this

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

    def validated(self) -> RelayConfig:
        """This configuration, or `ConfigError` saying what to fix. NaN and infinity are
        refused: NaN compares false with everything, so it would slip past every bound."""
        if not (math.isfinite(self.expiry) and 0 < self.expiry <= MAX_EXPIRY):
            raise ConfigError(
                "The transfer expiry (expiry_hours, TRAUMA_RELAY_EXPIRY_HOURS) must be more "
                f"than 0 and at most {MAX_EXPIRY / HOURS:g} hours (14 days), "
                f"not {self.expiry / HOURS:g}."
            )
        if not (
            math.isfinite(self.sweep_interval) and 0 < self.sweep_interval <= MAX_SWEEP_INTERVAL
        ):
            raise ConfigError(
                "The sweep interval (sweep_seconds, TRAUMA_RELAY_SWEEP_SECONDS) must be more "
                f"than 0 and at most {MAX_SWEEP_INTERVAL:g} seconds (1 hour), "
                f"not {self.sweep_interval:g}."
            )
        if not 1 <= self.max_manifest_record <= MAX_RECORD_SIZE:
            raise ConfigError(
                f"max_manifest_record must be from 1 to {MAX_RECORD_SIZE} bytes (what receiving "
                "sites accept)."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port.")
        if not (math.isfinite(self.guess_window) and MINUTES <= self.guess_window <= 24 * HOURS):
            raise ConfigError("guess_window_minutes must be from 1 to 1440 (24 hours).")
        for name, value in (
            ("guess_limit_per_site", self.guess_limit_site),
            ("guess_limit_per_address", self.guess_limit_address),
            ("guess_limit_global", self.guess_limit_global),
            ("refusals_audited_per_minute", self.refusals_audited_per_minute),
            ("max_open_transfers_per_site", self.max_open_transfers_per_site),
        ):
            if not 1 <= value <= 1_000_000:
                raise ConfigError(f"{name} must be from 1 to 1000000, not {value}.")
        for name, value in (
            ("site_quota_bytes", self.site_quota_bytes),
            ("max_transfer_bytes", self.max_transfer_bytes),
        ):
            if value < 1024:
                raise ConfigError(f"{name} must be at least 1024 bytes.")
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ConfigError("tls_certificate and tls_key go together: give both, or neither.")
        try:
            networks(self.metrics_allowed)
        except ValueError as e:
            raise ConfigError(f"metrics_allowed must list addresses or networks: {e}") from e
        try:
            networks(self.trusted_proxies)
        except ValueError as e:
            raise ConfigError(
                f"trusted_proxies must list addresses or networks (10.0.0.5, 10.0.0.0/24): {e}"
            ) from e
        if self.disk_reserve_bytes < 0:
            raise ConfigError("disk_reserve_bytes may not be negative.")
        if not (math.isfinite(self.delivered_grace) and 0 <= self.delivered_grace <= MAX_EXPIRY):
            raise ConfigError("delivered_grace_minutes must be from 0 to 20160 (14 days).")
        if self.max_object_size < 1024:
            raise ConfigError("max_object_size must be at least 1024 bytes.")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError("public_url must start with http:// or https://.")
        self._validate_object_store()
        return self

    def _validate_object_store(self) -> None:
        if self.objects_url is None:
            for name in ("s3_endpoint_url", "s3_region", "s3_credentials_file"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{name} is for an S3 bucket: set objects_url too.")
            return
        S3Location.parse(self.objects_url)
        endpoint = self.s3_endpoint_url
        if endpoint is not None and (
            not endpoint.startswith(("http://", "https://")) or "@" in endpoint
        ):
            raise ConfigError(
                "s3_endpoint_url must be the http:// or https:// address of the S3 service "
                "(without credentials), e.g. https://minio.example.org:9000."
            )
        if self.s3_credentials_file is not None and not self.s3_credentials_file.is_file():
            raise ConfigError(f"s3_credentials_file {self.s3_credentials_file} is not a file.")


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "TRAUMA_RELAY_EXPIRY_HOURS": ("expiry", lambda v: float(v) * HOURS),
    "TRAUMA_RELAY_PUBLIC_URL": ("public_url", str),
    "TRAUMA_RELAY_SWEEP_SECONDS": ("sweep_interval", float),
    "TRAUMA_RELAY_MAX_OBJECT_BYTES": ("max_object_size", int),
    "TRAUMA_RELAY_OBJECTS_URL": ("objects_url", str),
}
_TOML: dict[str, Callable[[Any], Any]] = {
    "expiry_hours": lambda v: ("expiry", float(v) * HOURS),
    "public_url": lambda v: ("public_url", str(v)),
    "sweep_seconds": lambda v: ("sweep_interval", float(v)),
    "max_object_bytes": lambda v: ("max_object_size", int(v)),
    "log_file": lambda v: ("log_file", Path(v)),
    "max_open_transfers_per_site": lambda v: ("max_open_transfers_per_site", int(v)),
    "site_quota_bytes": lambda v: ("site_quota_bytes", int(v)),
    "max_transfer_bytes": lambda v: ("max_transfer_bytes", int(v)),
    "disk_reserve_bytes": lambda v: ("disk_reserve_bytes", int(v)),
    "delivered_grace_minutes": lambda v: ("delivered_grace", float(v) * MINUTES),
    "tls_certificate": lambda v: ("tls_certificate", Path(v)),
    "tls_key": lambda v: ("tls_key", Path(v)),
    "metrics_allowed": lambda v: (
        "metrics_allowed",
        (v,) if isinstance(v, str) else tuple(str(x) for x in v),
    ),
    "trusted_proxies": lambda v: (
        "trusted_proxies",
        (v,) if isinstance(v, str) else tuple(str(x) for x in v),
    ),
    "guess_window_minutes": lambda v: ("guess_window", float(v) * MINUTES),
    "guess_limit_per_site": lambda v: ("guess_limit_site", int(v)),
    "guess_limit_per_address": lambda v: ("guess_limit_address", int(v)),
    "guess_limit_global": lambda v: ("guess_limit_global", int(v)),
    "objects_url": lambda v: ("objects_url", str(v)),
    "s3_endpoint_url": lambda v: ("s3_endpoint_url", str(v)),
    "s3_region": lambda v: ("s3_region", str(v)),
    "s3_credentials_file": lambda v: ("s3_credentials_file", Path(v)),
}


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen must look like HOST:PORT, not {listen!r}.")
    return host.strip("[]") or "127.0.0.1", int(port)


def load(
    data_dir: Path,
    listen: str | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> RelayConfig:
    """Build the configuration: defaults, then `relay.toml`, then environment, then arguments."""
    env = os.environ if environ is None else environ
    config = RelayConfig(data_dir=data_dir)
    toml_path = data_dir / "relay.toml"
    if toml_path.exists():
        try:
            table = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{toml_path} is not valid TOML: {e}") from e
        for key, value in table.items():
            if key not in _TOML:
                raise ConfigError(f"{toml_path}: unknown setting {key!r}.")
            try:
                name, converted = _TOML[key](value)
            except (TypeError, ValueError, OverflowError) as e:  # int(inf): OverflowError
                raise ConfigError(f"{toml_path}: {key} has a bad value: {e}") from e
            config = replace(config, **{name: converted})
    for var, (name, convert) in _ENV.items():
        if var in env:
            try:
                config = replace(config, **{name: convert(env[var])})
            except (ValueError, OverflowError) as e:
                raise ConfigError(f"{var} has a bad value: {e}") from e
    if listen is not None:
        host, port = parse_listen(listen)
        config = replace(config, host=host, port=port)
    if overrides:
        config = replace(config, **overrides)
    return config.validated()

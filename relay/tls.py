"""The relay's HTTPS: TLS 1.2 or newer, the standard library's modern defaults (forward-secret
AEAD ciphers, no compression or renegotiation), from the certificate and key files named in its
configuration."""

from __future__ import annotations

import ssl

from relay.config import RelayConfig
from relay.errors import ConfigError


def server_context(config: RelayConfig) -> ssl.SSLContext | None:
    """The TLS context to serve with, or None when the relay serves plain HTTP (behind a
    TLS-terminating proxy, or on this machine only). Raises `ConfigError` naming the files when
    they cannot be loaded."""
    if config.tls_certificate is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_certificate, config.tls_key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"server.tls_certificate {config.tls_certificate} and server.tls_key "
            f"{config.tls_key} could not be loaded as a PEM certificate and its key ({e})."
        ) from e
    return context

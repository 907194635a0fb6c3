"""How the sites check the relay's certificate: against the system's authorities, or, for a
relay with a certificate from a private authority (`ops/make_certificates.py`), only against
that authority's certificate in the file TRAUMA_RELAY_CA_FILE names."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from site_agent import errors

CA_FILE_ENV = "TRAUMA_RELAY_CA_FILE"


def client_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying TLS context (TLS 1.2 or newer, host name checked). Raises
    `CertificateAuthorityUnreadable` when TRAUMA_RELAY_CA_FILE names a file that cannot be
    used."""
    ca_file = (os.environ if environ is None else environ).get(CA_FILE_ENV, "").strip()
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise errors.CertificateAuthorityUnreadable(
            f"{CA_FILE_ENV} names {ca_file}, which could not be read as PEM certificates ({e}). "
            "Give the file of the authority that signed the relay's certificate."
        ) from e
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context

"""How the sites check the relay's certificate: against the system's authorities, or, for a
relay with a certificate from a private authority (`ops/make_certificates.py`), only against
that authority's certificate in the file TRAUMA_RELAY_CA_FILE names.

A context is made once per authority file (and again when the file changes): loading the
system's authorities costs milliseconds of CPU, and a console asks the relay on every status
poll. The system's authorities are read when the first context is made."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping

from site_agent import errors

CA_FILE_ENV = "TRAUMA_RELAY_CA_FILE"


def client_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying TLS context (TLS 1.2 or newer, host name checked), shared: do not change
    it. Raises `CertificateAuthorityUnreadable` when TRAUMA_RELAY_CA_FILE names a file that
    cannot be used."""
    ca_file = (os.environ if environ is None else environ).get(CA_FILE_ENV, "").strip()
    version: tuple[int, int, int] | None = None
    if ca_file:
        try:
            st = os.stat(ca_file)
            version = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            version = None  # the context below fails, saying why
    return _context(ca_file, version)


@functools.lru_cache(maxsize=8)
def _context(ca_file: str, _version: tuple[int, int, int] | None) -> ssl.SSLContext:
    """The context for `ca_file` (empty: the system's authorities) as it is at `_version`;
    a failure is not cached."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise errors.CertificateAuthorityUnreadable(
            f"{CA_FILE_ENV} names {ca_file}, which could not be read as PEM certificates ({e}). "
            "Give the file of the authority that signed the relay's certificate."
        ) from e
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context

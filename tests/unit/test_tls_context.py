"""The sites' TLS context is made once per authority file, and again when the file changes;
a file that cannot be used is named every time it is asked for."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from site_agent import errors, tls

REPO = Path(__file__).resolve().parents[2]


def _authority(out: Path) -> Path:
    subprocess.run(  # the operator's script, as the README gives it
        [
            sys.executable,
            str(REPO / "ops/make_certificates.py"),
            "--out",
            str(out),
            "--name",
            "relay.test",
            "--ip",
            "127.0.0.1",
        ],
        capture_output=True,
        check=True,
    )
    return out / "ca.pem"


def _subjects(context: ssl.SSLContext) -> list[bytes]:
    """The authorities `context` trusts, as DER (two authorities made by the script share
    a subject name)."""
    return list(context.get_ca_certs(binary_form=True))  # type: ignore[arg-type]


def test_one_context_per_authority_file_until_the_file_changes(tmp_path: Path) -> None:
    first, second = _authority(tmp_path / "first"), _authority(tmp_path / "second")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(first.read_bytes())
    env = {tls.CA_FILE_ENV: str(ca)}

    context = tls.client_context(env)
    assert tls.client_context(env) is context
    assert len(_subjects(context)) == 1

    # The operator puts the new authority in place: the next context trusts it alone.
    replacement = tmp_path / "ca.pem.new"
    replacement.write_bytes(second.read_bytes())
    os.replace(replacement, ca)
    renewed = tls.client_context(env)
    assert renewed is not context
    assert _subjects(renewed) == _subjects(tls.client_context({tls.CA_FILE_ENV: str(second)}))
    assert _subjects(renewed) != _subjects(context)
    assert tls.client_context(env) is renewed


def test_an_unusable_file_is_named_each_time_and_a_fixed_one_then_works(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    env = {tls.CA_FILE_ENV: str(ca)}
    for _ in range(2):
        with pytest.raises(errors.CertificateAuthorityUnreadable, match=str(ca)):
            tls.client_context(env)
    fixed = tmp_path / "ca.pem.new"
    fixed.write_bytes(_authority(tmp_path / "made").read_bytes())
    os.replace(fixed, ca)
    assert len(_subjects(tls.client_context(env))) == 1


def test_without_a_file_the_system_authorities_are_loaded_once() -> None:
    assert tls.client_context({}) is tls.client_context({})
    assert tls.client_context({}).minimum_version == ssl.TLSVersion.TLSv1_2

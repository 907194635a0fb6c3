#!/usr/bin/env python3
"""Make a private certificate authority and a server certificate signed by it, for a pilot or a
test of the relay over HTTPS (with `cryptography`; nothing hand-made).

    python ops/make_certificates.py --out /etc/trauma-relay/tls --name relay.hospital.local \\
        [--name another.name] [--ip 10.0.0.5]

writes, readable by this user only:
    ca.pem            the authority's certificate: give it to the sites (TRAUMA_RELAY_CA_FILE)
    ca-key.pem        its key: keep it offline once the server certificate is made
    relay.pem         the relay's certificate (tls_certificate in relay.toml)
    relay-key.pem     its key (tls_key)

A production relay should have a certificate from the hospital's or a public authority.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS = 397  # what browsers accept for a server certificate


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make(out: Path, names: list[str], ips: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trauma-relay private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ips)[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(out / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    _write(out / "ca-key.pem", _key_pem(ca_key))
    _write(out / "relay.pem", server.public_bytes(serialization.Encoding.PEM))
    _write(out / "relay-key.pem", _key_pem(key))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the four files")
    parser.add_argument("--name", action="append", default=[], help="the relay's host name")
    parser.add_argument("--ip", action="append", default=[], help="the relay's IP address")
    args = parser.parse_args()
    if not args.name and not args.ip:
        parser.error("give the relay's --name (host name) or --ip, or both")
    make(args.out, args.name, args.ip)
    print(f"Wrote ca.pem, ca-key.pem, relay.pem and relay-key.pem to {args.out}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

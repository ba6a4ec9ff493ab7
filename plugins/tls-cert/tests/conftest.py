"""Certificates made on the spot: a test CA and leaf certificates for 127.0.0.1 and localhost."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServedCert:
    """A certificate and key in PEM files, ready for a server."""

    cert_file: Path
    key_file: Path
    not_after: datetime


@dataclass(frozen=True)
class Pki:
    """A test CA (its certificate in ``ca_file``) and a factory of leaf certificates."""

    ca_file: Path
    leaf: Callable[..., ServedCert]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "runner tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA valid for a year, and ``leaf(days=..., self_signed=...)`` for 127.0.0.1 and localhost.

    Leaf certificates expire ``days`` days from now (negative: already
    expired). EC keys: generating them takes microseconds, RSA takes tenths
    of a second.
    """
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("runner test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = _write_pem(folder / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    counter = iter(range(1_000_000))

    def leaf(*, days: float, self_signed: bool = False) -> ServedCert:
        n = next(counter)
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = now + timedelta(days=days)
        subject = _name("localhost")
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self_signed else ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after) - timedelta(days=30))
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        cert = builder.sign(key if self_signed else ca_key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return ServedCert(
            cert_file=_write_pem(
                folder / f"leaf-{n}.pem", cert.public_bytes(serialization.Encoding.PEM)
            ),
            key_file=_write_pem(folder / f"leaf-{n}.key", key_pem),
            not_after=cert.not_valid_after_utc,
        )

    return Pki(ca_file=ca_file, leaf=leaf)

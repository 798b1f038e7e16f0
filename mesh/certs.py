"""A tiny SPIFFE PKI for the local sandbox and the end-to-end tests.

This module owns certificate issuance only: a self-signed EC P-256 CA per
trust domain and X.509-SVID leaves with the SPIFFE ID as the single URI SAN.
It is not a production CA; in a mesh, istiod issues the workload
certificates and Weir only reads the identities Envoy derives from them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Clocks of the processes that check these certificates may lag a little
# behind ours; backdating avoids "certificate is not yet valid" flakes.
_BACKDATE = datetime.timedelta(minutes=5)
_VALIDITY = datetime.timedelta(days=1)

SANDBOX_NAMESPACE = "weir-sandbox"
SERVER_SERVICE_ACCOUNT = "llm-gateway"
SERVER_NAME = "envoy-server"


@dataclass(frozen=True)
class IssuedCert:
    """A PEM leaf certificate, its PEM (PKCS#8) private key and its SPIFFE ID."""

    cert_pem: bytes
    key_pem: bytes
    spiffe_id: str | None


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertAuthority:
    """A self-signed CA that issues X.509-SVIDs for one trust domain.

    Create as many as you like: a second, unrelated CA is how tests prove
    that a certificate from another trust root is rejected.
    """

    def __init__(
        self,
        trust_domain: str,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
    ) -> None:
        self.trust_domain = trust_domain
        self._key = key
        self._cert = cert

    @classmethod
    def create(cls, trust_domain: str, common_name: str = "weir sandbox CA") -> CertAuthority:
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
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
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(trust_domain, key, cert)

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    def issue(
        self,
        spiffe_id: str | None,
        *,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
        server: bool = False,
        client: bool = True,
    ) -> IssuedCert:
        """Issue a leaf: CA:FALSE, digitalSignature, the requested EKUs.

        Per the X.509-SVID spec the SPIFFE ID is the only URI SAN; DNS and IP
        SANs are allowed beside it (the Envoy listener needs them for
        hostname checks by clients). ``spiffe_id=None`` issues a certificate
        without any identity, for "valid chain, no SPIFFE ID" tests.
        """
        if not (server or client):
            raise ValueError("a leaf needs serverAuth, clientAuth or both")
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = []
        if spiffe_id is not None:
            sans.append(x509.UniformResourceIdentifier(spiffe_id))
        sans.extend(x509.DNSName(d) for d in dns_names)
        sans.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses)
        ekus = []
        if server:
            ekus.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            ekus.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        # The subject carries no identity (SPIFFE says the URI SAN does); a CN
        # only makes the certificate readable in openssl output and logs.
        common_name = (spiffe_id or next(iter(dns_names), None) or "weir workload")[:64]
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.trust_domain),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if sans:
            # RFC 5280 only requires a critical SAN when the subject is empty;
            # ours has a CN, so it stays non-critical like most leaf certificates.
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return IssuedCert(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=_key_pem(key),
            spiffe_id=spiffe_id,
        )


def sandbox_server_spiffe_id(trust_domain: str) -> str:
    """The SPIFFE ID of the sandbox Envoy listener (also the XFCC ``By=`` value)."""
    return f"spiffe://{trust_domain}/ns/{SANDBOX_NAMESPACE}/sa/{SERVER_SERVICE_ACCOUNT}"


@dataclass(frozen=True)
class PkiPaths:
    """Where :func:`write_pki` put the files."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    workloads: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Workload name -> SPIFFE ID, as issued."""

    def workload(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) paths of a workload passed to :func:`write_pki`."""
        if name not in self.workloads:
            raise KeyError(f"no certificate was issued for workload {name!r}")
        return self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    if private:
        # Create with 0600 from the start: a chmod after write leaves a window
        # in which the key is world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)  # an existing file keeps its old mode on O_CREAT
    else:
        path.write_bytes(data)


def write_pki(directory: Path, trust_domain: str, workloads: Mapping[str, str]) -> PkiPaths:
    """Write a CA, one client certificate per workload and the Envoy server certificate.

    ``workloads`` maps a file name stem to a SPIFFE ID. Files: ``ca.pem``,
    ``<name>.pem`` / ``<name>-key.pem`` and ``envoy-server.pem`` /
    ``envoy-server-key.pem``. Keys are mode 0600.
    """
    if SERVER_NAME in workloads or "ca" in workloads:
        raise ValueError(f"workload names {SERVER_NAME!r} and 'ca' are reserved")
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertAuthority.create(trust_domain)
    ca_path = directory / "ca.pem"
    _write(ca_path, ca.cert_pem)
    for name, spiffe_id in workloads.items():
        leaf = ca.issue(spiffe_id, client=True)
        _write(directory / f"{name}.pem", leaf.cert_pem)
        _write(directory / f"{name}-key.pem", leaf.key_pem, private=True)
    server = ca.issue(
        sandbox_server_spiffe_id(trust_domain),
        dns_names=("localhost",),
        ip_addresses=("127.0.0.1",),
        server=True,
        client=False,
    )
    server_cert = directory / f"{SERVER_NAME}.pem"
    server_key = directory / f"{SERVER_NAME}-key.pem"
    _write(server_cert, server.cert_pem)
    _write(server_key, server.key_pem, private=True)
    return PkiPaths(
        directory=directory,
        ca=ca_path,
        server_cert=server_cert,
        server_key=server_key,
        workloads=dict(workloads),
    )

"""The sandbox SPIFFE PKI: X.509-SVID shape, chains, files, and a real TLS handshake."""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from mesh.certs import CertAuthority, IssuedCert, write_pki

TD = "cluster.local"
CHECKOUT = "spiffe://cluster.local/ns/payments/sa/checkout"
RESEARCH = "spiffe://cluster.local/ns/research/sa/notebook"
SERVER_ID = "spiffe://cluster.local/ns/weir-sandbox/sa/llm-gateway"


@pytest.fixture(scope="module")
def ca() -> CertAuthority:
    return CertAuthority.create(TD)


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def test_the_ca_is_a_signing_ca_valid_now() -> None:
    cert = load(CertAuthority.create(TD).cert_pem)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert basic.critical and basic.value.ca
    assert usage.key_cert_sign
    assert cert.not_valid_before_utc < cert.not_valid_after_utc
    cert.verify_directly_issued_by(cert)


@pytest.mark.parametrize(
    ("server", "client", "expected_ekus"),
    [
        (False, True, [ExtendedKeyUsageOID.CLIENT_AUTH]),
        (True, False, [ExtendedKeyUsageOID.SERVER_AUTH]),
        (True, True, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_a_leaf_is_an_x509_svid_with_the_requested_key_usages(
    ca: CertAuthority, server: bool, client: bool, expected_ekus: list[x509.ObjectIdentifier]
) -> None:
    issued = ca.issue(CHECKOUT, server=server, client=client)
    cert = load(issued.cert_pem)

    assert issued.spiffe_id == CHECKOUT
    assert uri_sans(cert) == [CHECKOUT]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == (
        expected_ekus
    )
    cert.verify_directly_issued_by(load(ca.cert_pem))


def test_a_leaf_without_spiffe_id_has_no_uri_san(ca: CertAuthority) -> None:
    issued = ca.issue(None, dns_names=("localhost",))
    assert issued.spiffe_id is None
    assert uri_sans(load(issued.cert_pem)) == []


def test_a_leaf_needs_at_least_one_key_usage(ca: CertAuthority) -> None:
    with pytest.raises(ValueError, match="serverAuth"):
        ca.issue(CHECKOUT, server=False, client=False)


@pytest.mark.parametrize(
    ("common_name", "failure"),
    [
        ("another CA", ValueError),  # the issuer name already differs
        ("weir sandbox CA", InvalidSignature),  # same name: only the key tells them apart
    ],
)
def test_a_second_ca_does_not_vouch_for_the_first_cas_leaves(
    ca: CertAuthority, common_name: str, failure: type[Exception]
) -> None:
    other = CertAuthority.create(TD, common_name=common_name)
    leaf = load(ca.issue(CHECKOUT).cert_pem)
    with pytest.raises(failure):
        leaf.verify_directly_issued_by(load(other.cert_pem))


def test_write_pki_writes_every_file_with_private_keys_mode_0600(tmp_path: Path) -> None:
    paths = write_pki(tmp_path / "pki", TD, {"checkout": CHECKOUT, "research": RESEARCH})

    cert, key = paths.workload("checkout")
    expected_public = [paths.ca, paths.server_cert, cert, paths.workload("research")[0]]
    expected_private = [paths.server_key, key, paths.workload("research")[1]]
    assert {p.name for p in tmp_path.joinpath("pki").iterdir()} == {
        "ca.pem",
        "envoy-server.pem",
        "envoy-server-key.pem",
        "checkout.pem",
        "checkout-key.pem",
        "research.pem",
        "research-key.pem",
    }
    for path in expected_public + expected_private:
        assert path.is_file()
    for path in expected_private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert uri_sans(load(cert.read_bytes())) == [CHECKOUT]


def test_the_envoy_server_cert_names_localhost_and_the_gateway_identity(tmp_path: Path) -> None:
    paths = write_pki(tmp_path, TD, {})
    cert = load(paths.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SERVER_ID]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    ekus = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(load(paths.ca.read_bytes()))


@pytest.mark.parametrize("name", ["envoy-server", "ca"])
def test_reserved_workload_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        write_pki(tmp_path, TD, {name: CHECKOUT})


def test_asking_for_an_unissued_workload_is_a_key_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        write_pki(tmp_path, TD, {"checkout": CHECKOUT}).workload("nobody")


# --- a real mTLS handshake (Python's OpenSSL), the way Envoy will check the chain ----


def _write_leaf(tmp_path: Path, name: str, issued: IssuedCert) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return cert, key


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> ssl.SSLObject:
    """Run a TLS handshake in memory; returns the server side, raises on failure."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3 delivers the server's verdict on the client cert after
            # the client thinks it is done: read once to surface an alert.
            with contextlib.suppress(ssl.SSLWantReadError):
                client.read(1)
            return server
    raise AssertionError("handshake did not finish")


def _contexts(
    tmp_path: Path, server_ca: CertAuthority, client_ca: CertAuthority
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_cert, server_key = _write_leaf(
        tmp_path,
        "server",
        server_ca.issue(SERVER_ID, dns_names=("localhost",), server=True, client=False),
    )
    client_cert, client_key = _write_leaf(tmp_path, "client", client_ca.issue(CHECKOUT))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.load_verify_locations(cadata=server_ca.cert_pem.decode())
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=server_ca.cert_pem.decode())
    client_ctx.load_cert_chain(client_cert, client_key)
    return server_ctx, client_ctx


def test_a_client_cert_from_the_same_ca_passes_mtls_and_shows_its_spiffe_id(
    tmp_path: Path, ca: CertAuthority
) -> None:
    server_ctx, client_ctx = _contexts(tmp_path, ca, ca)
    server = _handshake(server_ctx, client_ctx)
    peer = server.getpeercert()
    assert peer is not None
    assert ("URI", CHECKOUT) in peer["subjectAltName"]


def test_a_client_cert_from_another_ca_is_rejected_by_mtls(
    tmp_path: Path, ca: CertAuthority
) -> None:
    server_ctx, client_ctx = _contexts(tmp_path, ca, CertAuthority.create(TD, "another CA"))
    with pytest.raises(ssl.SSLError):
        _handshake(server_ctx, client_ctx)

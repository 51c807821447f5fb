"""HTTPS: certificates are verified against the URL's host while connecting to the vetted IP."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.errors import FailedPrecondition
from services.fetch import Fetcher, FetchPolicy, parse_allow_rules

from . import BODY, LocalServer

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _self_signed(name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `name`, valid for an hour."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def cert_pem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[bytes, Path, Path]]:
    cert, key = _self_signed("files.test")
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    yield cert, folder / "cert.pem", folder / "key.pem"


@pytest.fixture(scope="module")
def tls_server(cert_pem: tuple[bytes, Path, Path]) -> Iterator[LocalServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem[1], cert_pem[2])
    server = LocalServer(tls_context=context)
    yield server
    server.close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """files.test and other.test are 127.0.0.1; everything else resolves as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in ("files.test", "other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _policy(server: LocalServer) -> FetchPolicy:
    return FetchPolicy(allow=parse_allow_rules(f"127.0.0.1:{server.port}"),
                       connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0)


@pytest.mark.usefixtures("fake_dns")
def test_a_trusted_certificate_for_the_host_works(tls_server: LocalServer,
                                                  cert_pem: tuple[bytes, Path, Path]) -> None:
    context = ssl.create_default_context(cadata=cert_pem[0].decode())
    fetcher = Fetcher(_policy(tls_server), ssl_context=context)
    assert fetcher.fetch_bytes(f"https://files.test:{tls_server.port}/file").data == BODY
    echo = fetcher.fetch_bytes(f"https://files.test:{tls_server.port}/echo").data.decode()
    assert echo.startswith(f"files.test:{tls_server.port}|")


@pytest.mark.usefixtures("fake_dns")
def test_an_untrusted_certificate_is_refused(tls_server: LocalServer) -> None:
    with pytest.raises(FailedPrecondition) as info:
        Fetcher(_policy(tls_server)).open(f"https://files.test:{tls_server.port}/file")
    assert info.value.message.startswith("url: the TLS certificate of files.test is not valid")


@pytest.mark.usefixtures("fake_dns")
def test_a_certificate_for_another_host_is_refused(tls_server: LocalServer,
                                                   cert_pem: tuple[bytes, Path, Path]) -> None:
    context = ssl.create_default_context(cadata=cert_pem[0].decode())
    fetcher = Fetcher(_policy(tls_server), ssl_context=context)
    for host in ("other.test", "127.0.0.1"):
        with pytest.raises(FailedPrecondition, match=f"TLS certificate of {host} is not valid"):
            fetcher.open(f"https://{host}:{tls_server.port}/file")

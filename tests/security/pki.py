"""Throwaway certificate authorities for the TLS tests (the `cryptography` package): a CA,
server certificates for the loopback names, client certificates, and a second, unrelated
"wrong" CA with its own client certificate. Everything is written as PEM files into a folder
and lives for a day."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_LIFETIME = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate file and, in memory, what it needs to sign."""

    name: str
    cert_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pair:
    """A leaf certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "corral tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_ca(folder: Path, name: str) -> Authority:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(name, path, cert, key)


def issue(ca: Authority, folder: Path, name: str, *, server_names: tuple[str, ...] = (),
          client: bool = False) -> Pair:
    """A certificate signed by `ca`: for a server when `server_names` (its SANs) is given,
    for a client when `client`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + \
        ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + _LIFETIME)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    if server_names:
        builder = builder.add_extension(_san(server_names), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    pair = Pair(folder / f"{name}.crt", folder / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(_key_pem(key))
    pair.key.chmod(0o600)
    return pair


@dataclass(frozen=True)
class Pki:
    """Everything the TLS tests use: `ca` signed `server` (the loopback names), `client` and
    `named_server` (only `corral.internal`); `wrong_ca` signed `wrong_client` and
    `wrong_server` (an impostor with the loopback names)."""

    ca: Path
    server: Pair
    named_server: Pair
    client: Pair
    wrong_ca: Path
    wrong_client: Pair
    wrong_server: Pair

    def server_env(self, mtls: bool = False) -> dict[str, str]:
        """What a service needs to serve TLS (mTLS when `mtls`) and to call the others."""
        env = {"CORRAL_TLS_CERT": str(self.server.cert), "CORRAL_TLS_KEY": str(self.server.key),
               **self.client_env(with_cert=mtls)}
        if mtls:
            env["CORRAL_TLS_CLIENT_CA"] = str(self.ca)
        return env

    def client_env(self, with_cert: bool = False) -> dict[str, str]:
        env = {"CORRAL_TLS_CA": str(self.ca)}
        if with_cert:
            env |= {"CORRAL_TLS_CLIENT_CERT": str(self.client.cert),
                    "CORRAL_TLS_CLIENT_KEY": str(self.client.key)}
        return env


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = make_ca(folder, "corral-test-ca")
    wrong = make_ca(folder, "wrong-ca")
    return Pki(ca=ca.cert_path,
               server=issue(ca, folder, "server", server_names=LOOPBACK_NAMES),
               named_server=issue(ca, folder, "named-server",
                                  server_names=("corral.internal",)),
               client=issue(ca, folder, "client", client=True),
               wrong_ca=wrong.cert_path,
               wrong_client=issue(wrong, folder, "wrong-client", client=True),
               wrong_server=issue(wrong, folder, "wrong-server",
                                  server_names=LOOPBACK_NAMES))

"""Security settings every service shares: its own credentials towards the other services
(the service key) and TLS for what it serves and what it calls."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

from corral.credentials import (
    KEYS_DIR,
    SERVICE_KEY_FILE,
    Credentials,
    TlsFiles,
    new_api_key,
    read_secret_file,
    write_secret_file,
)
from services.common.config import setting

log = logging.getLogger("corral.security")


@dataclass
class SecuritySettings:
    service_key: str = setting(
        "CORRAL_SERVICE_KEY", "",
        "The services' own credential towards one another; the same value on every service "
        "(default: <data dir>/keys/service.key, created by the catalog on first start)",
        secret=True)
    service_key_file: str = setting("CORRAL_SERVICE_KEY_FILE", "",
                                    "Read CORRAL_SERVICE_KEY from this file")
    auth_cache_seconds: float = setting(
        "CORRAL_AUTH_CACHE_SECONDS", 10.0,
        "How long a service remembers the catalog's answer about an API key (a revoked key "
        "keeps working at most this long on the upload and preprocess services)")
    tls_cert: str = setting(
        "CORRAL_TLS_CERT", "",
        "PEM certificate chain this service presents; with CORRAL_TLS_KEY it serves only TLS "
        "(plaintext connections are refused)")
    tls_key: str = setting("CORRAL_TLS_KEY", "", "PEM private key of CORRAL_TLS_CERT")
    tls_client_ca: str = setting(
        "CORRAL_TLS_CLIENT_CA", "",
        "mTLS: only clients with a certificate signed by this PEM CA may connect")
    tls_ca: str = setting(
        "CORRAL_TLS_CA", "",
        "PEM CA that signed the services' certificates: clients (and this service calling "
        "the others and its health check) verify servers against it; they use TLS when it or "
        "a client certificate is set")
    tls_client_cert: str = setting(
        "CORRAL_TLS_CLIENT_CERT", "",
        "mTLS: the certificate clients (and this service calling the others) present")
    tls_client_key: str = setting("CORRAL_TLS_CLIENT_KEY", "",
                                  "mTLS: the private key of CORRAL_TLS_CLIENT_CERT")
    tls_server_name: str = setting(
        "CORRAL_TLS_SERVER_NAME", "",
        "Name to verify in server certificates instead of the host of the address")

    def server_tls(self) -> grpc.ServerCredentials | None:
        """Server credentials when TLS is configured, else None (plaintext)."""
        if not (self.tls_cert or self.tls_key):
            if self.tls_client_ca:  # asking for mTLS must never end in plaintext
                raise ValueError("CORRAL_TLS_CLIENT_CA needs CORRAL_TLS_CERT and CORRAL_TLS_KEY")
            return None
        if not (self.tls_cert and self.tls_key):
            raise ValueError("TLS needs both CORRAL_TLS_CERT and CORRAL_TLS_KEY")
        client_ca = Path(self.tls_client_ca).read_bytes() if self.tls_client_ca else None
        return grpc.ssl_server_credentials(
            [(Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes())],
            root_certificates=client_ca, require_client_auth=client_ca is not None)

    def client_tls(self) -> TlsFiles:
        return TlsFiles(ca=self.tls_ca, cert=self.tls_client_cert, key=self.tls_client_key,
                        server_name=self.tls_server_name)

    def resolve_service_key(self, data_dir: Path, create: bool = False) -> str:
        """The service key: CORRAL_SERVICE_KEY, CORRAL_SERVICE_KEY_FILE, or the data
        directory's keys/service.key (which the catalog creates, mode 0600, when `create`)."""
        if self.service_key:
            return self.service_key.strip()
        path = Path(self.service_key_file) if self.service_key_file \
            else data_dir / KEYS_DIR / SERVICE_KEY_FILE
        if path.is_file():
            return read_secret_file(path)
        if not create or self.service_key_file:
            raise ValueError(
                f"no service key: set CORRAL_SERVICE_KEY (the same on every service) or start "
                f"the catalog first with the same data directory ({path} is missing)")
        _, key = new_api_key()
        try:
            write_secret_file(path, key)
            log.info("service key created", extra={"path": str(path)})
        except FileExistsError:  # another replica was first
            pass
        return read_secret_file(path)

    def service_credentials(self, data_dir: Path) -> Credentials:
        """What this service presents when it calls another corral service."""
        return Credentials(api_key=self.resolve_service_key(data_dir), tls=self.client_tls())

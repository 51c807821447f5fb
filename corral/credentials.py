"""How a client proves who it is: an API key (sent as `authorization: Bearer <key>`) and, when
the services use TLS, the CA that signed their certificates plus an optional client
certificate for mTLS.

Keys look like `corral_<key id>_<secret>`: the key id is public (listed, revoked by), the
secret is 32 random bytes and only its SHA-256 is stored by the catalog.

Where a client finds its key, first match wins: the `api_key` argument, CORRAL_API_KEY,
the file named by CORRAL_API_KEY_FILE, `<CORRAL_DATA_DIR or ./corral-data>/keys/admin.key`
(written by `corral up` on first start, mode 0600), and the admin key of the `corral up` that
last served the catalog address on this machine (`corral up` notes the key file's path, never
the key, in ~/.config/corral/local-keys.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

API_KEY_ENV = "CORRAL_API_KEY"
API_KEY_FILE_ENV = "CORRAL_API_KEY_FILE"
DATA_DIR_ENV = "CORRAL_DATA_DIR"
DEFAULT_DATA_DIR = "corral-data"
TLS_CA_ENV = "CORRAL_TLS_CA"
TLS_CLIENT_CERT_ENV = "CORRAL_TLS_CLIENT_CERT"
TLS_CLIENT_KEY_ENV = "CORRAL_TLS_CLIENT_KEY"
TLS_SERVER_NAME_ENV = "CORRAL_TLS_SERVER_NAME"

AUTHORIZATION_HEADER = "authorization"
# Instance-wide keys (instance admins, the services) say which project they act in.
PROJECT_HEADER = "x-corral-project"
# The services say which role the user they act for has, so they never act above it.
ON_BEHALF_ROLE_HEADER = "x-corral-on-behalf-role"

KEYS_DIR = "keys"
ADMIN_KEY_FILE = "admin.key"
SERVICE_KEY_FILE = "service.key"

_KEY = re.compile(r"corral_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret_sha256: str


def new_api_key() -> tuple[str, str]:
    """(key id, full key) for a fresh random key."""
    key_id = secrets.token_hex(8)
    return key_id, f"corral_{key_id}_{secrets.token_urlsafe(32)}"


def parse_api_key(key: str) -> ParsedKey | None:
    """The key id and the SHA-256 of the secret, or None when `key` is not shaped like a key.
    The secret is 256 random bits, so a plain SHA-256 is as strong as a slow password hash."""
    match = _KEY.fullmatch(key.strip())
    if match is None:
        return None
    return ParsedKey(match.group(1), hashlib.sha256(match.group(2).encode()).hexdigest())


def write_secret_file(path: Path, text: str) -> None:
    """Creates `path` with mode 0600 (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def read_secret_file(path: Path) -> str:
    return path.read_text().strip()


def data_dir_key_file(name: str, data_dir: str | Path | None = None) -> Path:
    base = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(base).expanduser() / KEYS_DIR / name


def _local_keys_index() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "corral" / "local-keys.json"


def remember_local_key(catalog_addr: str, key_file: Path) -> None:
    """Notes which key file belongs to the `corral up` serving `catalog_addr` (best effort)."""
    index = _local_keys_index()
    try:
        known = json.loads(index.read_text()) if index.is_file() else {}
        known[catalog_addr] = str(key_file)
        index.parent.mkdir(parents=True, exist_ok=True)
        tmp = index.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, index)
    except (OSError, ValueError):
        pass


def _remembered_key(catalog_addr: str) -> str:
    try:
        known = json.loads(_local_keys_index().read_text())
        path = Path(known[catalog_addr])
        return read_secret_file(path) if path.is_file() else ""
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def find_api_key(explicit: str | None = None, catalog_addr: str = "") -> str:
    """The key this client uses ("" when none is configured; the server then answers
    UNAUTHENTICATED)."""
    if explicit:
        return explicit.strip()
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV].strip()
    if os.environ.get(API_KEY_FILE_ENV):
        return read_secret_file(Path(os.environ[API_KEY_FILE_ENV]).expanduser())
    local = data_dir_key_file(ADMIN_KEY_FILE)
    if local.is_file():
        return read_secret_file(local)
    return _remembered_key(catalog_addr) if catalog_addr else ""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA that signed the server certificates, and for mTLS this client's
    certificate and key. `server_name` overrides the name checked in the certificate."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    @classmethod
    def from_env(cls) -> TlsFiles:
        return cls(ca=os.environ.get(TLS_CA_ENV, ""),
                   cert=os.environ.get(TLS_CLIENT_CERT_ENV, ""),
                   key=os.environ.get(TLS_CLIENT_KEY_ENV, ""),
                   server_name=os.environ.get(TLS_SERVER_NAME_ENV, ""))

    @property
    def enabled(self) -> bool:
        """TLS is on when a CA or a client certificate is configured: a client certificate
        alone must never be dropped silently for a plaintext connection (without a CA the
        server is verified against the system's trusted roots)."""
        return bool(self.ca or self.cert or self.key)

    def check(self) -> None:
        """Raises ValueError for a half-configured client certificate."""
        if bool(self.cert) != bool(self.key):
            raise ValueError(f"mTLS needs both {TLS_CLIENT_CERT_ENV} and {TLS_CLIENT_KEY_ENV}")


@dataclass(frozen=True)
class Credentials:
    """What a channel carries: the API key, the project to act in (instance-wide keys only),
    the role a service acts with on behalf of a user, and TLS files."""

    api_key: str = ""
    project: str = ""
    on_behalf_role: str = ""
    tls: TlsFiles = TlsFiles()

    @classmethod
    def from_env(cls, api_key: str | None = None, project: str | None = None,
                 catalog_addr: str = "") -> Credentials:
        return cls(api_key=find_api_key(api_key, catalog_addr),
                   project=project if project is not None
                   else os.environ.get("CORRAL_PROJECT", ""),
                   tls=TlsFiles.from_env())

    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        if self.api_key:
            pairs.append((AUTHORIZATION_HEADER, f"Bearer {self.api_key}"))
        if self.project:
            pairs.append((PROJECT_HEADER, self.project))
        if self.on_behalf_role:
            pairs.append((ON_BEHALF_ROLE_HEADER, self.on_behalf_role))
        return tuple(pairs)

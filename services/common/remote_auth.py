"""How the upload and preprocess services check a caller's API key: they ask the catalog
(AdminService.Authenticate, with their own service key) and remember the answer briefly."""

from __future__ import annotations

import asyncio
import secrets

import grpc

from corral.catalog.v1 import admin_service_pb2 as admin_pb2
from corral.catalog.v1 import admin_service_pb2_grpc as admin_grpc
from corral.credentials import Credentials
from corral.errors import Unavailable
from corral.rpc import open_aio_channel
from services.common.auth import Principal, Role, TtlCache

SERVICE_KEY_ID = "service"


def service_principal() -> Principal:
    return Principal(key_id=SERVICE_KEY_ID, role=Role.ADMIN, project=None, service=True,
                     instance_wide=True)


def is_service_key(presented: str, service_key: str) -> bool:
    return bool(service_key) and secrets.compare_digest(presented.encode(),
                                                        service_key.encode())


def principal_from_proto(caller: admin_pb2.Caller) -> Principal:
    return Principal(key_id=caller.key_id, role=Role(caller.role), project=caller.project or None,
                     service=caller.service, instance_wide=caller.instance_wide)


class CatalogAuthenticator:
    """Resolves keys through the catalog at `catalog_addr`. The channel is opened on first
    use, inside the running event loop."""

    def __init__(self, catalog_addr: str, credentials: Credentials, cache_seconds: float,
                 timeout_seconds: float = 5.0) -> None:
        self._addr, self._credentials = catalog_addr, credentials
        self._cache, self._timeout = TtlCache(cache_seconds), timeout_seconds
        self._stub: admin_grpc.AdminServiceStub | None = None
        self._channel: grpc.aio.Channel | None = None

    async def authenticate(self, api_key: str) -> Principal | None:
        if is_service_key(api_key, self._credentials.api_key):
            return service_principal()
        hit, principal = self._cache.get(api_key)
        if hit:
            return principal
        if self._stub is None:
            self._channel = open_aio_channel(self._addr, self._credentials)
            self._stub = admin_grpc.AdminServiceStub(self._channel)
        try:
            reply = await self._stub.Authenticate(
                admin_pb2.AuthenticateRequest(api_key=api_key), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            # While the catalog is down, a key it accepted recently still reads this
            # service's own state (GetStats); anything else needs the catalog anyway.
            stale = self._cache.stale(api_key)
            if stale is not None:
                return stale
            raise Unavailable(f"catalog at {self._addr}: {exc.code().name}") from None
        principal = principal_from_proto(reply.caller) if reply.valid else None
        self._cache.put(api_key, principal)
        return principal

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class LocalAuthenticator:
    """The catalog's own: its key table (through `resolve`, run in a thread) and the
    service key."""

    def __init__(self, resolve, service_key: str, cache_seconds: float = 2.0) -> None:
        self._resolve, self._service_key = resolve, service_key
        self._cache = TtlCache(cache_seconds)

    async def authenticate(self, api_key: str) -> Principal | None:
        if is_service_key(api_key, self._service_key):
            return service_principal()
        hit, principal = self._cache.get(api_key)
        if hit:
            return principal
        principal = await asyncio.to_thread(self._resolve, api_key)
        self._cache.put(api_key, principal)
        return principal

    def forget(self) -> None:
        """Called after a revocation so this catalog stops accepting the key at once."""
        self._cache.clear()


class OwnerAuthenticator:
    """For a service run by a user with their own API key (a private preprocess worker):
    it accepts exactly that key."""

    def __init__(self, owner_key: str) -> None:
        self._owner_key = owner_key

    async def authenticate(self, api_key: str) -> Principal | None:
        if is_service_key(api_key, self._owner_key):
            return Principal(key_id="owner", role=Role.ADMIN, project=None,
                             instance_wide=True)
        return None

    async def close(self) -> None:
        return None


def worker_credentials(settings, data_dir) -> tuple[Credentials, object]:
    """(credentials towards the catalog, authenticator for callers) of a service that may run
    either beside the catalog (the service key) or on a user's machine (their API key)."""
    try:
        credentials = settings.service_credentials(data_dir)
    except ValueError:
        user = Credentials.from_env()
        if not user.api_key:
            raise
        return Credentials(api_key=user.api_key, tls=settings.client_tls()), \
            OwnerAuthenticator(user.api_key)
    return credentials, CatalogAuthenticator(settings.catalog_addr, credentials,
                                             settings.auth_cache_seconds)

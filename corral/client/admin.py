"""Projects and API keys (the catalog's AdminService). Mixed into corral.client.Client.

    with Client() as client:                      # an instance admin key
        client.create_project("vision")
        record, key = client.create_api_key("vision", "writer", description="ci uploads")
        # `key` is shown only now: store it (e.g. as CORRAL_API_KEY of the CI job).
        client.revoke_api_key(record["key_id"])
        print(client.whoami())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from corral.catalog.v1 import admin_service_pb2 as admin_pb2
from corral.client.convert import timestamp_to_iso
from corral.errors import InvalidArgument
from corral.rpc import translated

ProjectDict = dict[str, Any]
ApiKeyDict = dict[str, Any]
CallerDict = dict[str, Any]

ROLES = {"reader": admin_pb2.ROLE_READER, "writer": admin_pb2.ROLE_WRITER,
         "admin": admin_pb2.ROLE_ADMIN}
ROLE_NAMES = {value: name for name, value in ROLES.items()}


def role_value(role: str) -> int:
    """"writer" -> ROLE_WRITER; InvalidArgument naming the choices otherwise."""
    value = ROLES.get(role.strip().lower()) if isinstance(role, str) else None
    if value is None:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return value


def project_to_dict(project: admin_pb2.Project) -> ProjectDict:
    return {"name": project.name, "description": project.description,
            "create_time": timestamp_to_iso(project.create_time)}


def api_key_to_dict(key: admin_pb2.ApiKey) -> ApiKeyDict:
    """A key's record: never the key itself."""
    return {"key_id": key.key_id, "project": key.project or None,
            "role": ROLE_NAMES.get(key.role, "unspecified"),
            "instance_wide": not key.project, "description": key.description,
            "create_time": timestamp_to_iso(key.create_time),
            "revoke_time": timestamp_to_iso(key.revoke_time),
            "revoked": key.HasField("revoke_time")}


def caller_to_dict(caller: admin_pb2.Caller) -> CallerDict:
    return {"key_id": caller.key_id, "project": caller.project or None,
            "role": ROLE_NAMES.get(caller.role, "unspecified"),
            "instance_wide": caller.instance_wide, "service": caller.service}


class AdminMixin:
    # Provided by Client.
    timeout: float
    _admin: Any
    _pages: Callable[[Any, Any], Iterator[Any]]

    def create_project(self, name: str, description: str = "") -> ProjectDict:
        """Creates a project (instance admins only)."""
        request = admin_pb2.CreateProjectRequest(name=name, description=description)
        with translated():
            response = self._admin.CreateProject(request, timeout=self.timeout)
        return project_to_dict(response.project)

    def list_projects(self) -> Iterator[ProjectDict]:
        """The projects this key can see: all of them for instance-wide keys, else its own."""
        for response in self._pages(self._admin.ListProjects, admin_pb2.ListProjectsRequest()):
            yield from (project_to_dict(p) for p in response.projects)

    def create_api_key(self, project: str | None, role: str, description: str = "",
                       instance_wide: bool = False) -> tuple[ApiKeyDict, str]:
        """(the key's record, the key). The key is shown only here; the catalog keeps only
        a hash of it. `instance_wide` keys act in every project (instance admins only, and
        `project` must then be empty)."""
        request = admin_pb2.CreateApiKeyRequest(project=project or "", role=role_value(role),
                                                description=description,
                                                instance_wide=instance_wide)
        with translated():
            response = self._admin.CreateApiKey(request, timeout=self.timeout)
        return api_key_to_dict(response.api_key), response.key

    def list_api_keys(self, project: str | None = None,
                      include_revoked: bool = False) -> Iterator[ApiKeyDict]:
        """The keys (never their secrets) this key may manage, optionally of one project."""
        request = admin_pb2.ListApiKeysRequest(project=project or "",
                                               include_revoked=include_revoked)
        for response in self._pages(self._admin.ListApiKeys, request):
            yield from (api_key_to_dict(k) for k in response.api_keys)

    def revoke_api_key(self, key_id: str) -> ApiKeyDict:
        """Revokes a key by its id. The catalog refuses it at once; the upload and preprocess
        services within CORRAL_AUTH_CACHE_SECONDS."""
        request = admin_pb2.RevokeApiKeyRequest(key_id=key_id)
        with translated():
            response = self._admin.RevokeApiKey(request, timeout=self.timeout)
        return api_key_to_dict(response.api_key)

    def whoami(self) -> CallerDict:
        """Who this client's key is: key id, role, project (None: every project)."""
        with translated():
            response = self._admin.GetCaller(admin_pb2.GetCallerRequest(),
                                             timeout=self.timeout)
        return caller_to_dict(response.caller)

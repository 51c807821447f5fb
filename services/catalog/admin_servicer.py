"""AdminService over gRPC: projects and API keys (access.py), and key checks for the other
services. Thin: request -> domain call with the caller -> response."""

from __future__ import annotations

import asyncio
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from corral.catalog.v1 import admin_service_pb2 as pb
from corral.catalog.v1 import admin_service_pb2_grpc as pb_grpc
from corral.errors import InvalidArgument
from services.catalog.access import Access, ApiKey, Project
from services.common.auth import Need, Principal, Role, caller
from services.common.remote_auth import LocalAuthenticator

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AdminService"].full_name
NEEDS = {f"/{SERVICE_NAME}/{method}": need for method, need in {
    "CreateProject": Need.ADMIN, "ListProjects": Need.READ, "CreateApiKey": Need.ADMIN,
    "ListApiKeys": Need.ADMIN, "RevokeApiKey": Need.ADMIN, "GetCaller": Need.READ,
    "Authenticate": Need.SERVICE}.items()}


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def project_to_proto(project: Project) -> pb.Project:
    return pb.Project(name=project.name, description=project.description,
                      create_time=_timestamp(project.create_time))


def key_to_proto(key: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(key_id=key.key_id, project=key.project or "", role=int(key.role),
                     description=key.description, create_time=_timestamp(key.create_time),
                     revoke_time=_timestamp(key.revoke_time))


def caller_to_proto(principal: Principal) -> pb.Caller:
    return pb.Caller(key_id=principal.key_id, project=principal.project or "",
                     role=int(principal.role), service=principal.service,
                     instance_wide=principal.instance_wide)


def role_in(value: int) -> Role:
    if value not in (pb.ROLE_READER, pb.ROLE_WRITER, pb.ROLE_ADMIN):
        raise InvalidArgument("role must be ROLE_READER, ROLE_WRITER or ROLE_ADMIN")
    return Role(value)


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, access: Access, authenticator: LocalAuthenticator) -> None:
        self._access, self._authenticator = access, authenticator

    async def CreateProject(self, request: pb.CreateProjectRequest,
                            context: grpc.aio.ServicerContext) -> pb.CreateProjectResponse:
        project = await asyncio.to_thread(self._access.create_project, caller(), request.name,
                                          request.description)
        return pb.CreateProjectResponse(project=project_to_proto(project))

    async def ListProjects(self, request: pb.ListProjectsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListProjectsResponse:
        page = await asyncio.to_thread(self._access.list_projects, caller(), request.page_size,
                                       request.page_token)
        return pb.ListProjectsResponse(projects=[project_to_proto(p) for p in page.entries],
                                       next_page_token=page.next_page_token)

    async def CreateApiKey(self, request: pb.CreateApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> pb.CreateApiKeyResponse:
        record, key = await asyncio.to_thread(
            self._access.create_key, caller(), request.project, role_in(request.role),
            request.description, request.instance_wide)
        return pb.CreateApiKeyResponse(api_key=key_to_proto(record), key=key)

    async def ListApiKeys(self, request: pb.ListApiKeysRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListApiKeysResponse:
        page = await asyncio.to_thread(self._access.list_keys, caller(), request.project,
                                       request.include_revoked, request.page_size,
                                       request.page_token)
        return pb.ListApiKeysResponse(api_keys=[key_to_proto(k) for k in page.entries],
                                      next_page_token=page.next_page_token)

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> pb.RevokeApiKeyResponse:
        record = await asyncio.to_thread(self._access.revoke_key, caller(), request.key_id)
        self._authenticator.forget()
        return pb.RevokeApiKeyResponse(api_key=key_to_proto(record))

    async def GetCaller(self, request: pb.GetCallerRequest,
                        context: grpc.aio.ServicerContext) -> pb.GetCallerResponse:
        return pb.GetCallerResponse(caller=caller_to_proto(caller()))

    async def Authenticate(self, request: pb.AuthenticateRequest,
                           context: grpc.aio.ServicerContext) -> pb.AuthenticateResponse:
        principal = await self._authenticator.authenticate(request.api_key)
        if principal is None or principal.service:
            # The service key is never handed out as a user's identity.
            return pb.AuthenticateResponse(valid=False)
        return pb.AuthenticateResponse(valid=True, caller=caller_to_proto(principal))

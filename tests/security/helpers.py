"""What the security tests share: the keys handed out, project alpha's data under attack,
raw gRPC stubs carrying a chosen key (or none), and looks into the blob store and the logs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import testkeys
from sdk.stack import Stack

from corral.client import Client
from corral.credentials import Credentials
from corral.preprocess.v1 import preprocess_service_pb2_grpc
from corral.rpc import SyncHeaders, open_channel
from corral.upload.v1 import upload_service_pb2_grpc

ROLES = ("reader", "writer", "admin")


@dataclass
class Keys:
    """Every key the module handed out or presented: none may ever show up in a log."""

    by_project: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # key -> key id
    presented: list[str] = field(default_factory=list)  # made-up and revoked ones too

    def of(self, project: str, role: str) -> str:
        return self.by_project[project][role]

    def all(self) -> list[str]:
        keys = [key for roles in self.by_project.values() for key in roles.values()]
        return [*keys, *self.presented, testkeys.ADMIN_KEY, testkeys.SERVICE_KEY]


@dataclass
class Target:
    """Project alpha's data: a dataset, an uploaded item, an open resumable session."""

    project: str
    dataset_id: str
    item_id: str
    item_content: bytes
    upload_id: str


@dataclass
class Stubs:
    upload: upload_service_pb2_grpc.UploadServiceStub
    preprocess: preprocess_service_pb2_grpc.PreprocessServiceStub


@contextlib.contextmanager
def stubs_for(stack: Stack, key: str = "", project: str = "",
              metadata: tuple[tuple[str, str], ...] = ()) -> Iterator[Stubs]:
    """Stubs whose calls carry `key` ("" = no authorization header at all), the project
    header when `project` is set, and any raw `metadata`."""
    credentials = Credentials(api_key=key, project=project)
    channels = [open_channel(stack.upload.addr, credentials),
                open_channel(stack.preprocess.addr, credentials)]
    if metadata:
        channels = [grpc.intercept_channel(channel, SyncHeaders(lambda: metadata))
                    for channel in channels]
    try:
        yield Stubs(upload_service_pb2_grpc.UploadServiceStub(channels[0]),
                    preprocess_service_pb2_grpc.PreprocessServiceStub(channels[1]))
    finally:
        for channel in channels:
            channel.close()


def client_for(stack: Stack, key: str, **kwargs: object) -> Client:
    return Client(api_key=key, **stack.client_kwargs(), **kwargs)


def stored_blobs(stack: Stack) -> set[str]:
    """Every file in the fs blob store (sessions and temporary files included) except the
    thumbnails the preprocess worker adds on its own."""
    root = stack.data_dir / "blobs"
    return {str(path.relative_to(root)) for path in root.rglob("*")
            if path.is_file() and path.relative_to(root).parts[0] != "thumbnails"}


def service_logs(stack: Stack) -> dict[str, str]:
    logs: dict[str, str] = {}
    for service in (stack.catalog, stack.upload, stack.preprocess):
        assert service.log_path is not None
        logs[service.name] = service.log_path.read_text(errors="replace")
    return logs

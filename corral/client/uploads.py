"""Streaming one upload (chunks with write_offset, finish_write on the last) and planning
uploads of files and folders.

Folders keep their own name, like `cp -r photos dest/`: uploading the local folder
`photos/` (holding `a.jpg` and `cats/b.jpg`) to remote dir `/in` creates `/in/photos/a.jpg`
and `/in/photos/cats/b.jpg`. Empty folders create nothing (remote folders exist only as the
parents of items), symlinked folders are not followed, and files that are not regular
files are reported as failures.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import google_crc32c
import grpc

from corral import paths
from corral.client.convert import OUTCOMES, item_to_dict
from corral.client.results import UploadFailure, UploadResult
from corral.client.wire import ChunkRequest
from corral.errors import CorralError, DataLoss, Internal
from corral.rpc import translate
from corral.upload.v1 import upload_service_pb2

DEFAULT_CHUNK_SIZE = 1024 * 1024
T = TypeVar("T")


class UploadCancelled(Exception):
    """The upload was stopped on the client's side before it finished."""


@dataclass(frozen=True)
class PlannedFile:
    """A local file and where it goes in the dataset."""

    local_path: Path
    remote_dir: str
    name: str
    size: int

    @property
    def filename(self) -> str:
        return paths.join(self.remote_dir, self.name)


@dataclass
class StreamState:
    """What the request generator saw; read after the call returns or fails."""

    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    sent: int = 0
    finished: bool = False
    error: BaseException | None = None


def upload_requests(spec: upload_service_pb2.UploadSpec | None, source: BinaryIO,
                    chunk_size: int, state: StreamState,
                    on_bytes: Callable[[int], None] | None = None,
                    cancel: threading.Event | None = None, upload_id: str = "",
                    ) -> Iterator[ChunkRequest]:
    """The request stream of one upload (the first message carries `spec`, or `upload_id` to
    continue a resumable session at state.sent), encoded by wire.encode_request. Reads one
    chunk ahead so the last data message carries finish_write (a file that fits in one chunk
    is a single message: spec, data and finish_write) and the whole object's sha256, which
    the server checks before anything is visible; every message carries its data's crc32c.
    Local errors end the stream early and are kept in `state`, because gRPC would otherwise
    swallow them into a bare CANCELLED."""
    try:
        chunk = source.read(chunk_size)
        first = True
        while True:
            if cancel is not None and cancel.is_set():
                raise UploadCancelled("upload cancelled")
            next_chunk = source.read(chunk_size) if chunk else b""
            last = not next_chunk
            state.hasher.update(chunk)
            yield ChunkRequest(write_offset=state.sent, data=chunk, finish_write=last,
                               spec=spec if first else None,
                               upload_id=upload_id if first else "",
                               crc32c=google_crc32c.value(chunk),
                               sha256=state.hasher.hexdigest() if last else "")
            first = False
            state.sent += len(chunk)
            if on_bytes is not None and chunk:
                on_bytes(len(chunk))
            if last:
                state.finished = True
                return
            chunk = next_chunk
    except Exception as exc:
        state.error = exc


def call_upload(call: Callable[[Iterator[ChunkRequest]], T], requests: Iterator[ChunkRequest],
                state: StreamState) -> T:
    """Runs one UploadItem call on `requests`; a local error the request stream kept in
    `state` wins over the bare CANCELLED gRPC reports for it."""
    try:
        response = call(requests)
    except grpc.RpcError as exc:
        if state.error is not None:
            raise state.error from None
        raise translate(exc) from exc
    if state.error is not None:
        raise state.error
    return response


def result_from_response(
        response: upload_service_pb2.UploadItemResponse | upload_service_pb2.UploadItemsResult,
        state: StreamState, local_path: str | None) -> UploadResult:
    """Checks what the server stored against what was sent, and builds the result."""
    if not response.HasField("item"):
        raise Internal("upload finished without an item (the server kept a partial upload)")
    outcome = OUTCOMES.get(response.outcome, "unspecified")
    item = item_to_dict(response.item)
    # A skipped upload keeps the existing content, which need not match ours; the server
    # may also have stopped reading early. A link file becomes a link item: no binary.
    if outcome in ("created", "overwritten") and state.finished and item["type"] == "file":
        digest = state.hasher.hexdigest()
        if item["sha256"] != digest or item["size"] != state.sent:
            raise DataLoss(
                f"stored item {item['filename']} has sha256 {item['sha256']} and size "
                f"{item['size']}, but {digest} and {state.sent} bytes were sent")
    if outcome not in ("created", "skipped", "overwritten"):
        raise Internal(f"upload returned an unknown outcome {response.outcome}")
    return UploadResult(item=item, outcome=outcome, local_path=local_path)  # type: ignore[arg-type]


def plan_uploads(local_paths: Iterable[str | os.PathLike[str]], remote_dir: str = "/",
                 ) -> tuple[list[PlannedFile], list[UploadFailure]]:
    """Expands files and folders into one PlannedFile per file. Paths that cannot be
    uploaded (missing, not regular files, invalid names, two files for one remote filename)
    become failures; nothing here raises for a single bad path."""
    remote_dir = paths.normalize_dir(remote_dir, "remote_dir")
    planned: list[PlannedFile] = []
    failures: list[UploadFailure] = []
    seen: dict[str, Path] = {}

    def add(local: Path, target_dir: str) -> None:
        filename = paths.join(target_dir, local.name)
        try:
            if not local.is_file():
                raise FileNotFoundError(f"not a regular file: {local}")
            target_dir_checked = paths.normalize_dir(target_dir, "remote_dir")
            name = paths.check_name(local.name)
            filename = paths.join(target_dir_checked, name)
            if filename in seen:
                raise FileExistsError(f"{seen[filename]} is also uploaded to {filename}")
            entry = PlannedFile(local, target_dir_checked, name, local.stat().st_size)
        except (OSError, CorralError) as exc:
            failures.append(UploadFailure(str(local), filename, exc))
            return
        seen[filename] = local
        planned.append(entry)

    for raw in local_paths:
        local = Path(raw)
        if local.is_dir():
            _add_folder(local, remote_dir, add)
        elif local.exists() or local.is_symlink():
            add(local, remote_dir)
        else:
            failures.append(UploadFailure(
                str(local), paths.join(remote_dir, local.name or str(local)),
                FileNotFoundError(f"no such file or directory: {local}")))
    return planned, failures


def _add_folder(folder: Path, remote_dir: str, add: Callable[[Path, str], None]) -> None:
    base_name = folder.resolve().name
    base = paths.join(remote_dir, base_name) if base_name else remote_dir
    for root, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        relative = Path(root).relative_to(folder)
        target_dir = base if relative == Path(".") else "/".join([base.rstrip("/"),
                                                                  *relative.parts])
        for filename in sorted(filenames):
            add(Path(root) / filename, target_dir)

"""The synchronous corral client: datasets, items, uploads, downloads, events, preprocessing.

One gRPC channel per service, shared by every thread; gRPC errors surface as the matching
corral.errors.CorralError subclass.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf import field_mask_pb2

from corral import addresses, paths
from corral.catalog.v1 import (
    admin_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    resources_pb2,
)
from corral.client import filters
from corral.client.admin import AdminMixin
from corral.client.bulk import BULK_MAX_FILE_BYTES, BulkSender, FileQueue
from corral.client.convert import (
    EVENT_TYPES_BY_NAME,
    DatasetDict,
    ItemDict,
    dataset_to_dict,
    duplicate_policy,
    item_to_dict,
    preprocessing_mode_value,
    scalar_fields_to_dict,
)
from corral.client.events import Subscription
from corral.client.filters import FilterSpec
from corral.client.linking import LinkingMixin
from corral.client.results import (
    DownloadResult,
    UploadEvent,
    UploadFailure,
    UploadResult,
    UploadSummary,
)
from corral.client.resumable import ResumableSender, ResumePolicy
from corral.client.triggers import TriggersMixin
from corral.client.uploads import (
    DEFAULT_CHUNK_SIZE,
    PlannedFile,
    StreamState,
    UploadCancelled,
    call_upload,
    plan_uploads,
    result_from_response,
    upload_requests,
)
from corral.client.wire import (
    UPLOAD_ITEM_METHOD,
    UPLOAD_ITEMS_METHOD,
    ChunkRequest,
    encode_bulk_request,
    encode_request,
)
from corral.credentials import Credentials
from corral.errors import (
    Aborted,
    CorralError,
    DataLoss,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from corral.preprocess.v1 import preprocess_service_pb2, preprocess_service_pb2_grpc
from corral.rpc import CHANNEL_OPTIONS, open_channel
from corral.rpc import translated as _translated
from corral.structs import dict_to_struct
from corral.upload.v1 import upload_service_pb2, upload_service_pb2_grpc

DatasetRef = str | Mapping[str, Any]
ProgressCallback = Callable[[UploadEvent], None]

_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_LIST_PAGE_SIZE = 1000
_UPLOAD_ATTEMPTS = 3
_PREPROCESS_DONE = ("success", "failed")


def is_id(text: str) -> bool:
    """Whether `text` has the shape of a server-assigned id (32 lowercase hex characters)."""
    return bool(_ID_PATTERN.match(text))


def preprocess_status(item: ItemDict) -> str | None:
    """The preprocess worker's verdict on an item ("success" or "failed"), None until then."""
    logs = item.get("metadata", {}).get("system", {}).get("executionLogs", {})
    record = logs.get("preprocess") if isinstance(logs, dict) else None
    return record.get("status") if isinstance(record, dict) else None


class Client(LinkingMixin, TriggersMixin, AdminMixin):
    """Talks to the three corral services. Thread-safe; use as a context manager or close().

    Addresses default to CORRAL_CATALOG_ADDR, CORRAL_UPLOAD_ADDR and CORRAL_PREPROCESS_ADDR.
    The API key defaults to CORRAL_API_KEY (see corral.credentials for where else it is
    looked for); `project` names the project an instance-wide key acts in (CORRAL_PROJECT);
    TLS is used when CORRAL_TLS_CA is set.
    `timeout` bounds every unary call in seconds; streams (uploads, downloads, subscriptions)
    are unbounded. Files above `resume_policy.threshold` bytes upload through resumable
    sessions that survive failed streams and service restarts (see ResumePolicy).
    """

    def __init__(self, catalog_addr: str | None = None, upload_addr: str | None = None,
                 preprocess_addr: str | None = None, timeout: float = 30.0,
                 resume_policy: ResumePolicy | None = None, api_key: str | None = None,
                 project: str | None = None, credentials: Credentials | None = None) -> None:
        self.catalog_addr = catalog_addr or addresses.catalog_addr()
        self.upload_addr = upload_addr or addresses.upload_addr()
        self.preprocess_addr = preprocess_addr or addresses.preprocess_addr()
        self.timeout = timeout
        self.credentials = credentials or Credentials.from_env(api_key, project,
                                                               self.catalog_addr)
        self._channels = [open_channel(addr, self.credentials, CHANNEL_OPTIONS)
                          for addr in (self.catalog_addr, self.upload_addr,
                                       self.preprocess_addr)]
        catalog, upload, preprocess = self._channels
        self._catalog = catalog_service_pb2_grpc.CatalogServiceStub(catalog)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(catalog)
        self._upload = upload_service_pb2_grpc.UploadServiceStub(upload)
        # Upload requests are ChunkRequests, encoded without an extra copy of every chunk.
        self._upload.UploadItem = upload.stream_unary(
            UPLOAD_ITEM_METHOD, request_serializer=encode_request,
            response_deserializer=upload_service_pb2.UploadItemResponse.FromString)
        # The same method called unary: a file that fits in one chunk is one request message,
        # and a sync stream-unary call starts a thread per call to consume its request
        # iterator, which costs more CPU than the rest of a small upload on the client. On
        # the wire both are one message and a half-close, so the server cannot tell them apart.
        self._default_upload = self._upload
        self._upload_single = upload.unary_unary(
            UPLOAD_ITEM_METHOD, request_serializer=encode_request,
            response_deserializer=upload_service_pb2.UploadItemResponse.FromString)
        # Many small files per stream (upload_paths), encoded like UploadItem's requests.
        self._upload_items = upload.stream_stream(
            UPLOAD_ITEMS_METHOD, request_serializer=encode_bulk_request,
            response_deserializer=upload_service_pb2.UploadItemsResponse.FromString)
        self._preprocess = preprocess_service_pb2_grpc.PreprocessServiceStub(preprocess)
        self.resume_policy = resume_policy or ResumePolicy()
        self._resumable = ResumableSender(self._upload, self._upload.UploadItem, timeout,
                                          self.resume_policy)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Datasets

    def create_dataset(self, name: str, description: str = "",
                       request_id: str | None = None) -> DatasetDict:
        request = catalog_service_pb2.CreateDatasetRequest(
            name=name, description=description, request_id=request_id or "")
        with _translated():
            response = self._catalog.CreateDataset(request, timeout=self.timeout)
        return dataset_to_dict(response.dataset)

    def get_dataset(self, name_or_id: str) -> DatasetDict:
        """Looks the dataset up by name first, then by id when the text looks like one."""
        try:
            return self._get_dataset(name=name_or_id)
        except NotFound:
            if not is_id(name_or_id):
                raise
        return self._get_dataset(dataset_id=name_or_id)

    def _get_dataset(self, name: str = "", dataset_id: str = "") -> DatasetDict:
        request = catalog_service_pb2.GetDatasetRequest(name=name, dataset_id=dataset_id)
        with _translated():
            response = self._catalog.GetDataset(request, timeout=self.timeout)
        return dataset_to_dict(response.dataset)

    def list_datasets(self) -> Iterator[DatasetDict]:
        """Every dataset, fetching pages as the iteration goes."""
        for response in self._pages(self._catalog.ListDatasets,
                                    catalog_service_pb2.ListDatasetsRequest()):
            yield from (dataset_to_dict(d) for d in response.datasets)

    def _pages(self, method: Any, request: Any) -> Iterator[Any]:
        """Every response page of a List call, following next_page_token."""
        request.page_size = _LIST_PAGE_SIZE
        while True:
            with _translated():
                response = method(request, timeout=self.timeout)
            yield response
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def delete_dataset(self, dataset: DatasetRef) -> int:
        """Deletes the dataset with its items and binaries; returns how many items went."""
        request = catalog_service_pb2.DeleteDatasetRequest(dataset_id=self._dataset_id(dataset))
        with _translated():
            response = self._catalog.DeleteDataset(request, timeout=self.timeout)
        return response.deleted_items

    def set_dataset_preprocessing(self, dataset: DatasetRef, mode: str) -> DatasetDict:
        """Who preprocesses the dataset's new items: "global" (the shared pool), "private"
        (only `corral preprocess --dataset NAME` workers) or "off" (nobody). Applies to every
        event not yet delivered; returns the dataset."""
        request = catalog_service_pb2.SetDatasetPreprocessingRequest(
            dataset_id=self._dataset_id(dataset), mode=preprocessing_mode_value(mode))
        with _translated():
            response = self._catalog.SetDatasetPreprocessing(request, timeout=self.timeout)
        return dataset_to_dict(response.dataset)

    def _dataset_id(self, dataset: DatasetRef) -> str:
        if isinstance(dataset, Mapping):
            return str(dataset["id"])
        return self.get_dataset(dataset)["id"]

    # Items

    def get_item(self, item_id: str) -> ItemDict:
        request = catalog_service_pb2.GetItemRequest(item_id=item_id)
        with _translated():
            response = self._catalog.GetItem(request, timeout=self.timeout)
        return item_to_dict(response.item)

    def get_item_by_path(self, dataset: DatasetRef, filename: str) -> ItemDict:
        """The item at `filename` ("/a/b/cat.jpg") in the dataset (a name, id or dict)."""
        request = catalog_service_pb2.GetItemRequest(
            dataset_id=self._dataset_id(dataset), filename=filename)
        with _translated():
            response = self._catalog.GetItem(request, timeout=self.timeout)
        return item_to_dict(response.item)

    def list_items(self, dataset: DatasetRef, dir: str = "/", recursive: bool | None = None,
                   *, filter: FilterSpec | None = None,
                   order_by: str | Sequence[str] | None = None) -> Iterator[ItemDict]:
        """Folders and files in `dir` (or everything below it), ordered by filename or by
        `order_by` ("size", "-created_at", "metadata.user.camera", or a list of keys).

        `filter` narrows the listing: a Filter (corral.client.filters.field), a string such
        as "metadata.user.camera=3", or a list of those that must all match. With a filter,
        `recursive` defaults to True (the whole subtree of `dir` is searched)."""
        request = self._list_request(dataset, dir, recursive, filter, order_by)
        for response in self._pages(self._catalog.ListItems, request):
            yield from (item_to_dict(item) for item in response.items)

    def count_items(self, dataset: DatasetRef, dir: str = "/", recursive: bool | None = None,
                    *, filter: FilterSpec | None = None) -> int:
        """How many items list_items with the same arguments would yield."""
        request = self._list_request(dataset, dir, recursive, filter, None)
        request.page_size, request.include_total_size = 1, True
        with _translated():
            return self._catalog.ListItems(request, timeout=self.timeout).total_size

    def _list_request(self, dataset: DatasetRef, dir: str, recursive: bool | None,
                      filter: FilterSpec | None, order_by: str | Sequence[str] | None
                      ) -> catalog_service_pb2.ListItemsRequest:
        item_filter = filters.to_filter(filter)
        request = catalog_service_pb2.ListItemsRequest(
            dataset_id=self._dataset_id(dataset), dir=dir,
            recursive=recursive if recursive is not None else item_filter is not None,
            order_by=filters.to_order(order_by))
        if item_filter is not None:
            request.filter.CopyFrom(item_filter.to_proto())
        return request

    def update_item(self, item_id: str, *, name: str | None = None, dir: str | None = None,
                    description: str | None = None,
                    user_metadata: Mapping[str, Any] | None = None,
                    metadata_patch: Mapping[str, Any] | None = None) -> ItemDict:
        """Changes only the fields given. `user_metadata` replaces metadata.user as a whole;
        `metadata_patch` merges into it (RFC 7386: nested objects merge, None deletes)."""
        item = resources_pb2.Item(id=item_id)
        mask: list[str] = []
        if name is not None:
            item.name = name
            mask.append("name")
        if dir is not None:
            item.dir = dir
            mask.append("dir")
        if description is not None:
            item.description = description
            mask.append("description")
        if user_metadata is not None and metadata_patch is not None:
            raise InvalidArgument("give either user_metadata (replace) or metadata_patch, "
                                  "not both")
        metadata = user_metadata if user_metadata is not None else metadata_patch
        if metadata is not None:
            item.metadata.user.CopyFrom(dict_to_struct(dict(metadata), "user_metadata"))
            mask.append(_metadata_mask(replace=user_metadata is not None))
        if not mask:
            raise InvalidArgument("update_item needs at least one of name, dir, description, "
                                  "user_metadata, metadata_patch")
        request = catalog_service_pb2.UpdateItemRequest(
            item=item, update_mask=field_mask_pb2.FieldMask(paths=mask))
        with _translated():
            response = self._catalog.UpdateItem(request, timeout=self.timeout)
        return item_to_dict(response.item)

    def update_matching_items(self, dataset: DatasetRef, filter: FilterSpec, *,
                              metadata_patch: Mapping[str, Any] | None = None,
                              user_metadata: Mapping[str, Any] | None = None) -> int:
        """Merges `metadata_patch` into (or replaces with `user_metadata`) metadata.user of
        every item of the dataset matching `filter`, in one transaction; returns how many
        items changed."""
        if (metadata_patch is None) == (user_metadata is None):
            raise InvalidArgument("give exactly one of metadata_patch and user_metadata")
        item_filter = filters.to_filter(filter)
        if item_filter is None:
            raise InvalidArgument("filter is required (the items to update)")
        metadata = user_metadata if user_metadata is not None else metadata_patch
        request = catalog_service_pb2.UpdateMatchingItemsRequest(
            dataset_id=self._dataset_id(dataset), filter=item_filter.to_proto(),
            user_metadata=dict_to_struct(dict(metadata or {}), "user_metadata"),
            update_mask=field_mask_pb2.FieldMask(
                paths=[_metadata_mask(replace=user_metadata is not None)]))
        with _translated():
            # Thousands of rows and events in one transaction: no per-call deadline.
            return self._catalog.UpdateMatchingItems(request).updated_items

    def delete_item(self, item_id: str) -> int:
        """Deletes an item (a folder with everything below it); returns how many items went."""
        request = catalog_service_pb2.DeleteItemRequest(item_id=item_id)
        with _translated():
            response = self._catalog.DeleteItem(request, timeout=self.timeout)
        return response.deleted_items

    # Uploads

    def upload_file(self, path: str | os.PathLike[str], dataset: DatasetRef,
                    remote_dir: str = "/", name: str | None = None,
                    metadata: Mapping[str, Any] | None = None, description: str = "",
                    on_exists: str = "skip", chunk_size: int = DEFAULT_CHUNK_SIZE,
                    request_id: str | None = None) -> UploadResult:
        """Streams a local file in chunks (never whole into memory). The server computes the
        SHA-256; it is checked against the one computed here while sending (DataLoss if they
        differ). `on_exists` is "skip", "overwrite" or "fail" (AlreadyExists)."""
        local = Path(path)
        spec = self._upload_spec(dataset, remote_dir, name if name is not None else local.name,
                                 metadata, description, on_exists, request_id)
        return self._send_upload(spec, lambda: local.open("rb"), chunk_size, str(local))

    def upload_bytes(self, data: bytes, dataset: DatasetRef, name: str, remote_dir: str = "/",
                     metadata: Mapping[str, Any] | None = None, description: str = "",
                     on_exists: str = "skip", chunk_size: int = DEFAULT_CHUNK_SIZE,
                     request_id: str | None = None) -> UploadResult:
        """Uploads in-memory data as the item `name` in `remote_dir`."""
        spec = self._upload_spec(dataset, remote_dir, name, metadata, description, on_exists,
                                 request_id)
        return self._send_upload(spec, lambda: io.BytesIO(data), chunk_size, None)

    def _upload_spec(self, dataset: DatasetRef, remote_dir: str, name: str,
                     metadata: Mapping[str, Any] | None, description: str, on_exists: str,
                     request_id: str | None) -> upload_service_pb2.UploadSpec:
        """Validates what can be checked here, so bad input fails before any bytes move.
        Without a request_id one is generated: retries then stay idempotent."""
        policy = duplicate_policy(on_exists)
        return upload_service_pb2.UploadSpec(
            remote_dir=paths.normalize_dir(remote_dir, "remote_dir"),
            name=paths.check_name(name), description=description,
            user_metadata=dict_to_struct(dict(metadata or {}), "metadata"),
            duplicate_policy=policy,
            request_id=request_id or uuid.uuid4().hex,
            dataset_id=self._dataset_id(dataset))

    def _send_upload(self, spec: upload_service_pb2.UploadSpec,
                     open_source: Callable[[], BinaryIO], chunk_size: int,
                     local_path: str | None, on_bytes: Callable[[int], None] | None = None,
                     cancel: threading.Event | None = None) -> UploadResult:
        """Retries UNAVAILABLE and ABORTED with the same request_id, so a retry of an upload
        the server did finish returns that first result instead of a second item. A source
        larger than resume_policy.threshold goes through a resumable session instead, which
        continues a failed stream from what the server persisted."""
        if chunk_size <= 0:
            raise InvalidArgument("chunk_size must be positive")
        for attempt in range(_UPLOAD_ATTEMPTS):
            with open_source() as source:
                size = _remaining_size(source)
                if size is not None:
                    spec.size = size
                    if size > self.resume_policy.threshold:
                        break
                state = StreamState()
                try:
                    return self._upload_once(spec, source, chunk_size, state, local_path,
                                             on_bytes, cancel)
                except (Unavailable, Aborted):
                    if attempt + 1 == _UPLOAD_ATTEMPTS or (cancel and cancel.is_set()):
                        raise
            if on_bytes is not None and state.sent:
                on_bytes(-state.sent)  # the retry sends everything again
            time.sleep(0.25 * 2**attempt)
        return self._resumable.send(spec, open_source, chunk_size, local_path, on_bytes,
                                    cancel)

    def _upload_once(self, spec: upload_service_pb2.UploadSpec, source: BinaryIO,
                     chunk_size: int, state: StreamState, local_path: str | None,
                     on_bytes: Callable[[int], None] | None,
                     cancel: threading.Event | None) -> UploadResult:
        requests = upload_requests(spec, source, chunk_size, state, on_bytes, cancel)
        response = call_upload(self._call_upload, requests, state)
        return result_from_response(response, state, local_path)

    def _call_upload(self, requests: Iterator[ChunkRequest]
                     ) -> upload_service_pb2.UploadItemResponse:
        """One UploadItem call; a single-message upload goes as a unary call (no thread)."""
        if self._upload is not self._default_upload:  # a replaced stub (tests) gets the stream
            return self._upload.UploadItem(requests)
        first = next(requests, None)
        if first is None:  # the stream ended before its first message (state.error says why)
            return self._upload.UploadItem(iter(()))
        if first.finish_write:
            for _ in requests:  # ends the generator: counts the bytes, marks it finished
                raise AssertionError("a request after finish_write")
            return self._upload_single(first)  # the caller checks state.error, as for streams
        return self._upload.UploadItem(itertools.chain((first,), requests))

    def upload_paths(self, local_paths: Iterable[str | os.PathLike[str]], dataset: DatasetRef,
                     remote_dir: str = "/", metadata: Mapping[str, Any] | None = None,
                     description: str = "", on_exists: str = "skip", workers: int = 16,
                     progress: ProgressCallback | None = None,
                     chunk_size: int = DEFAULT_CHUNK_SIZE,
                     bulk_streams: int = 2) -> UploadSummary:
        """Uploads files and folders and reports every file.

        Small files (up to BULK_MAX_FILE_BYTES) go over `bulk_streams` UploadItems streams,
        many files per stream; larger ones `workers` at a time, one call each (resumable
        above resume_policy.threshold). `bulk_streams=0` sends every file in its own call.
        A folder keeps its own name under `remote_dir`, like `cp -r`: "photos/cats/a.jpg"
        uploaded to "/in" becomes "/in/photos/cats/a.jpg". One file's failure never stops
        the others; only an unknown dataset or an invalid argument raises. `progress` is
        called (from one thread at a time) with UploadEvents.
        """
        duplicate_policy(on_exists)  # fail before planning
        if chunk_size <= 0:
            raise InvalidArgument("chunk_size must be positive")
        dataset_id = self._dataset_id(dataset)
        planned, failures = plan_uploads(local_paths, remote_dir)
        summary = UploadSummary(failures=list(failures))
        report_lock = threading.Lock()

        def report(event: UploadEvent) -> None:
            if progress is not None:
                with report_lock:
                    progress(event)

        report(UploadEvent("planned", total_files=len(planned) + len(failures),
                           total_bytes=sum(p.size for p in planned)))
        for failure in failures:
            report(UploadEvent("finished", path=failure.local_path, failure=failure))
        sent = dict.fromkeys((p.local_path for p in planned), 0)
        done: queue.Queue[tuple[PlannedFile, UploadResult | BaseException]] = queue.Queue()

        def on_bytes(entry: PlannedFile, count: int) -> None:
            sent[entry.local_path] += count
            report(UploadEvent("bytes", path=str(entry.local_path), bytes=count))

        # Every file's spec differs only in where it goes and its request_id (plan_uploads
        # checked the names and folders): copying a template is cheaper than building each.
        template = self._upload_spec({"id": dataset_id}, "/", "template", metadata,
                                     description, on_exists, None)

        def make_spec(entry: PlannedFile) -> upload_service_pb2.UploadSpec:
            spec = upload_service_pb2.UploadSpec()
            spec.CopyFrom(template)
            spec.remote_dir, spec.name = entry.remote_dir, entry.name
            spec.request_id = uuid.uuid4().hex
            return spec

        def upload_alone(entry: PlannedFile) -> UploadResult:
            return self._send_upload(make_spec(entry), lambda: entry.local_path.open("rb"),
                                     chunk_size, str(entry.local_path),
                                     functools.partial(on_bytes, entry), cancel)

        def upload_one(entry: PlannedFile) -> None:
            try:
                outcome: UploadResult | BaseException = upload_alone(entry)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome = exc
            done.put((entry, outcome))

        cancel = threading.Event()
        bulk_files = [p for p in planned if bulk_streams > 0 and p.size <= BULK_MAX_FILE_BYTES]
        alone = [p for p in planned if not (bulk_streams > 0 and p.size <= BULK_MAX_FILE_BYTES)]
        sender = BulkSender(self._upload_items, make_spec, lambda e, o: done.put((e, o)),
                            on_bytes, upload_alone, chunk_size, cancel)
        streams = min(bulk_streams, len(bulk_files))
        executor = ThreadPoolExecutor(max_workers=max(1, workers) + streams,
                                      thread_name_prefix="corral-upload")
        try:
            file_queue = FileQueue(bulk_files)
            futures = [executor.submit(sender.run_stream, file_queue) for _ in range(streams)]
            futures += [executor.submit(upload_one, entry) for entry in alone]
            for entry, outcome in _outcomes(done, len(planned), futures):
                unsent = entry.size - sent[entry.local_path]
                if isinstance(outcome, UploadResult):
                    summary.results.append(outcome)
                    report(UploadEvent("finished", path=str(entry.local_path), result=outcome,
                                       unsent_bytes=unsent))
                elif isinstance(outcome, CorralError | OSError | UploadCancelled):
                    failure = UploadFailure(str(entry.local_path), entry.filename, outcome)
                    summary.failures.append(failure)
                    report(UploadEvent("finished", path=failure.local_path, failure=failure,
                                       unsent_bytes=unsent))
                else:
                    raise outcome
        except BaseException:
            sender.cancel_streams()
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        summary.results.sort(key=lambda r: r.item["filename"])
        summary.failures.sort(key=lambda f: f.filename)
        return summary

    # Downloads

    def download(self, item_id: str, dest: str | os.PathLike[str] | BinaryIO,
                 thumbnail: bool = False, expected_sha256: str | None = None) -> DownloadResult:
        """Streams the item's binary (or its thumbnail) to a path or a binary file object.

        A path is written through a temporary file beside it and renamed when complete, so a
        failed download never leaves a partial file. With `expected_sha256`, a mismatch
        raises DataLoss.
        """
        if not isinstance(dest, str | os.PathLike):
            return self._download_to(item_id, dest, thumbnail, expected_sha256, None)
        target = Path(dest)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                        dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                result = self._download_to(item_id, out, thumbnail, expected_sha256,
                                           str(target))
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return result

    def download_bytes(self, item_id: str, thumbnail: bool = False) -> bytes:
        buffer = io.BytesIO()
        self.download(item_id, buffer, thumbnail=thumbnail)
        return buffer.getvalue()

    def _download_to(self, item_id: str, out: BinaryIO, thumbnail: bool,
                     expected_sha256: str | None, path: str | None) -> DownloadResult:
        request = upload_service_pb2.DownloadRequest(item_id=item_id, thumbnail=thumbnail)
        hasher = hashlib.sha256()
        received, total_size, content_type = 0, None, ""
        with _translated():
            for response in self._upload.Download(request):
                if total_size is None:
                    total_size, content_type = response.total_size, response.content_type
                out.write(response.data)
                hasher.update(response.data)
                received += len(response.data)
        what = f"thumbnail of {item_id}" if thumbnail else f"item {item_id}"
        # A link whose remote sent no length reports total_size 0.
        if total_size and received != total_size:
            raise DataLoss(f"{what}: received {received} bytes of {total_size}")
        digest = hasher.hexdigest()
        if expected_sha256 and digest != expected_sha256:
            raise DataLoss(f"{what}: received sha256 {digest}, expected {expected_sha256}")
        return DownloadResult(path=path, size=received, content_type=content_type,
                              sha256=digest)

    # Events and preprocessing

    def subscribe(self, dataset: DatasetRef | None = None, *, start_cursor: str = "",
                  start_position: str = "earliest", event_types: Iterable[str] = (),
                  consumer_group: str = "") -> Subscription:
        """Item events ("created", "updated", "deleted") as dicts, from the start of the
        stream ("earliest"), from now ("latest") or after `start_cursor`; it keeps waiting
        for new events until cancel() or the end of a `with` block."""
        positions = {"earliest": catalog_service_pb2.START_POSITION_EARLIEST,
                     "latest": catalog_service_pb2.START_POSITION_LATEST}
        if start_position not in positions:
            raise InvalidArgument("start_position must be 'earliest' or 'latest'")
        types = list(event_types)
        unknown = [t for t in types if t not in EVENT_TYPES_BY_NAME or t == "unspecified"]
        if unknown:
            raise InvalidArgument(f"unknown event types {unknown}; use created, updated, "
                                  "deleted")
        request = catalog_service_pb2.SubscribeRequest(
            consumer_group=consumer_group, start_cursor=start_cursor,
            start_position=positions[start_position],
            event_types=[EVENT_TYPES_BY_NAME[t] for t in types],
            dataset_id=self._dataset_id(dataset) if dataset is not None else "")
        return Subscription(self._catalog.Subscribe(request))

    def preprocess_stats(self) -> dict[str, Any]:
        with _translated():
            response = self._preprocess.GetStats(preprocess_service_pb2.GetStatsRequest(),
                                                 timeout=self.timeout)
        return scalar_fields_to_dict(response)

    def wait_for_preprocessing(self, dataset: DatasetRef, timeout: float = 60.0,
                               poll_interval: float = 0.5) -> list[ItemDict]:
        """Polls until every file and link item of the dataset has a preprocess record
        (status "success" or "failed") and returns those items. DeadlineExceeded after `timeout`
        seconds names how many are still pending."""
        dataset_id = self._dataset_id(dataset)
        deadline = time.monotonic() + timeout
        while True:
            files = [item for item in self.list_items({"id": dataset_id}, recursive=True)
                     if item["type"] in ("file", "link")]
            pending = [item for item in files if preprocess_status(item) not in _PREPROCESS_DONE]
            if not pending:
                return files
            if time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"{len(pending)} of {len(files)} items not preprocessed after {timeout}s, "
                    f"e.g. {pending[0]['filename']}")
            time.sleep(poll_interval)


def _outcomes(done: queue.Queue[tuple[PlannedFile, UploadResult | BaseException]],
              count: int, futures: list[Future[None]],
              ) -> Iterator[tuple[PlannedFile, UploadResult | BaseException]]:
    """The `count` files' outcomes as they arrive; raises a worker's own failure (a bug: the
    workers report every file's error as its outcome) instead of waiting forever."""
    for _ in range(count):
        while True:
            try:
                yield done.get(timeout=0.5)
                break
            except queue.Empty:
                if all(future.done() for future in futures) and done.empty():
                    for future in futures:
                        future.result()
                    raise Internal("upload workers ended without reporting every file") from None


def _metadata_mask(replace: bool) -> str:
    return "metadata.user" if replace else "metadata.user.*"


def _remaining_size(source: BinaryIO) -> int | None:
    """Bytes left in a seekable source, so the server can refuse a size mismatch."""
    try:
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
    except (OSError, io.UnsupportedOperation):
        return None
    return end - position

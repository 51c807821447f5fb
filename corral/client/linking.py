"""Link items, clones and CSV imports: the parts of the client that create items without
uploading a local binary. Mixed into corral.client.Client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from corral.catalog.v1 import catalog_service_pb2, resources_pb2
from corral.client.convert import OUTCOMES, ItemDict, duplicate_policy, item_to_dict
from corral.errors import CorralError, InvalidArgument, error_for_code
from corral.rpc import translated
from corral.structs import dict_to_struct
from corral.upload.v1 import upload_service_pb2

IMPORT_CHUNK_BYTES = 256 * 1024
_BATCH = 1000


@dataclass(frozen=True)
class ImportRow:
    """One CSV row's result: `item` when it succeeded, `error` when it failed."""
    row: int
    line: int
    id: str
    action: str
    outcome: str
    item: ItemDict | None
    error: CorralError | None


@dataclass
class ImportReport:
    folder: str = ""
    rows: int = 0
    created: int = 0
    skipped: int = 0
    failed: int = 0
    fetch_concurrency: int = 0
    failures: list[ImportRow] = field(default_factory=list)


def _row(result: upload_service_pb2.ImportCsvRowResult) -> ImportRow:
    error = (error_for_code(result.error.code, result.error.message)
             if result.HasField("error") else None)
    return ImportRow(row=result.row, line=result.line, id=result.id, action=result.action,
                     outcome=OUTCOMES.get(result.outcome, "unspecified") if error is None
                     else "failed",
                     item=item_to_dict(result.item) if result.HasField("item") else None,
                     error=error)


class LinkingMixin:
    # Provided by Client.
    timeout: float
    _catalog: Any
    _upload: Any
    _dataset_id: Callable[[Any], str]

    def link(self, dataset: Any, url: str, remote_dir: str = "/", name: str | None = None,
             mimetype: str = "image/jpeg", metadata: Mapping[str, Any] | None = None,
             description: str = "", on_exists: str = "skip") -> ItemDict:
        """Creates a link item: no binary is stored; downloads and preprocessing fetch `url`
        through corral. `name` defaults to the URL's last path component."""
        result = self.link_many(dataset, [url], remote_dir, names=[name] if name else None,
                                mimetype=mimetype, metadata=metadata, description=description,
                                on_exists=on_exists)[0]
        if isinstance(result, CorralError):
            raise result
        return result

    def link_many(self, dataset: Any, urls: Iterable[str], remote_dir: str = "/",
                  names: Iterable[str] | None = None, mimetype: str = "image/jpeg",
                  metadata: Mapping[str, Any] | None = None, description: str = "",
                  on_exists: str = "skip") -> list[ItemDict | CorralError]:
        """One link item per URL, created in batches; each entry is the item or its error."""
        dataset_id = self._dataset_id(dataset)
        policy = duplicate_policy(on_exists)
        user = dict_to_struct(dict(metadata), "metadata") if metadata else None
        url_list = list(urls)
        name_list = list(names) if names is not None else [_name_from_url(u) for u in url_list]
        if len(name_list) != len(url_list):
            raise InvalidArgument(f"{len(url_list)} URLs but {len(name_list)} names")
        requests = [catalog_service_pb2.CreateItemRequest(
            dataset_id=dataset_id, dir=remote_dir, name=name, type=resources_pb2.ITEM_TYPE_LINK,
            link=resources_pb2.LinkInfo(url=url, mimetype=mimetype), description=description,
            user_metadata=user, duplicate_policy=policy)
            for url, name in zip(url_list, name_list, strict=True)]
        results: list[ItemDict | CorralError] = []
        for start in range(0, len(requests), _BATCH):
            batch = catalog_service_pb2.BatchCreateItemsRequest(
                requests=requests[start:start + _BATCH])
            with translated():
                reply = self._catalog.BatchCreateItems(batch, timeout=self.timeout)
            results += [item_to_dict(r.created.item) if r.HasField("created")
                        else error_for_code(r.error.code, r.error.message)
                        for r in reply.results]
        return results

    def clone(self, item_id: str, dataset: Any | None = None, remote_dir: str = "/",
              name: str | None = None, metadata: Mapping[str, Any] | None = None,
              on_exists: str = "skip", request_id: str = "") -> ItemDict:
        """Clones a file or link item into a folder of this or another dataset without
        copying its binary. The clone gets `metadata` as its user metadata, or a copy of the
        source's."""
        request = catalog_service_pb2.CloneItemRequest(
            item_id=item_id, dataset_id=self._dataset_id(dataset) if dataset else "",
            dir=remote_dir, name=name or "", duplicate_policy=duplicate_policy(on_exists),
            request_id=request_id)
        if metadata is not None:
            request.user_metadata.CopyFrom(dict_to_struct(dict(metadata), "metadata"))
        with translated():
            reply = self._catalog.CloneItem(request, timeout=self.timeout)
        return item_to_dict(reply.item)

    def import_csv(self, source: str | os.PathLike[str] | BinaryIO, dataset: Any,
                   remote_dir: str = "/", csv_name: str | None = None,
                   fetch_concurrency: int = 0,
                   on_row: Callable[[ImportRow], None] | None = None) -> ImportReport:
        """Imports a CSV (columns ID, URL, image_bytes, name, action, mimetype,
        item_metadata, item_description) into the folder "<remote_dir>/<csv name without
        extension>". The file is streamed; `on_row` sees every row's result as it completes.
        Importing the same CSV again creates no duplicates."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as file:
                return self.import_csv(file, dataset, remote_dir,
                                       csv_name or Path(source).name, fetch_concurrency, on_row)
        if not csv_name:
            raise InvalidArgument("csv_name is required when importing from a file object")
        spec = upload_service_pb2.ImportCsvSpec(
            dataset_id=self._dataset_id(dataset), remote_dir=remote_dir, csv_name=csv_name,
            fetch_concurrency=fetch_concurrency)
        report = ImportReport()
        with translated():
            for response in self._upload.ImportCsv(_import_requests(spec, source)):
                if response.HasField("summary"):
                    summary = response.summary
                    report.folder, report.rows = summary.folder, summary.rows
                    report.created, report.skipped = summary.created, summary.skipped
                    report.failed = summary.failed
                    report.fetch_concurrency = summary.fetch_concurrency
                    continue
                row = _row(response.row)
                if row.error is not None:
                    report.failures.append(row)
                if on_row is not None:
                    on_row(row)
        report.failures.sort(key=lambda r: r.row)
        return report


def _import_requests(spec: upload_service_pb2.ImportCsvSpec,
                     source: BinaryIO) -> Iterator[upload_service_pb2.ImportCsvRequest]:
    yield upload_service_pb2.ImportCsvRequest(spec=spec)
    while chunk := source.read(IMPORT_CHUNK_BYTES):
        yield upload_service_pb2.ImportCsvRequest(data=chunk)


def _name_from_url(url: str) -> str:
    """"https://host/a/cat.jpg?x=1" -> "cat.jpg"; the host when the path is empty."""
    parts = urlsplit(url)
    last = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    return last or parts.hostname or url

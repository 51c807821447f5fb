"""The gRPC face of the upload service: request in, domain call, response out. Domain errors
become statuses in services.common's ErrorInterceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from corral.rpc import UPLOAD_BATCHED_HEADER
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc
from services.common.auth import Need
from services.upload.bulk import BulkUploads
from services.upload.downloads import Downloader
from services.upload.imports import CsvImporter
from services.upload.uploads import Uploader

SERVICE_NAME = upload_pb2.DESCRIPTOR.services_by_name["UploadService"].full_name
_READS = ("QueryUploadStatus", "Download")
NEEDS = {f"/{SERVICE_NAME}/{method.name}": Need.READ if method.name in _READS else Need.WRITE
         for method in upload_pb2.DESCRIPTOR.services_by_name["UploadService"].methods}


class UploadServicer(upload_service_pb2_grpc.UploadServiceServicer):
    def __init__(self, uploader: Uploader, bulk: BulkUploads, downloader: Downloader,
                 importer: CsvImporter) -> None:
        self._uploader = uploader
        self._bulk = bulk
        self._downloader = downloader
        self._importer = importer

    async def UploadItem(  # noqa: N802 - gRPC method name
            self, request_iterator: AsyncIterator[upload_pb2.UploadItemRequest],
            context: grpc.aio.ServicerContext) -> upload_pb2.UploadItemResponse:
        return await self._uploader.upload(request_iterator)

    async def UploadItems(  # noqa: N802 - gRPC method name
            self, request_iterator: AsyncIterator[upload_pb2.UploadItemsRequest],
            context: grpc.aio.ServicerContext) -> AsyncIterator[upload_pb2.UploadItemsResponse]:
        # Announced at once: the client sends batched messages only once it has seen this.
        await context.send_initial_metadata((UPLOAD_BATCHED_HEADER,))
        async for response in self._bulk.run(request_iterator):
            yield response

    async def StartResumableUpload(  # noqa: N802 - gRPC method name
            self, request: upload_pb2.StartResumableUploadRequest,
            context: grpc.aio.ServicerContext) -> upload_pb2.StartResumableUploadResponse:
        return await self._uploader.resumable.start(request)

    async def QueryUploadStatus(  # noqa: N802 - gRPC method name
            self, request: upload_pb2.QueryUploadStatusRequest,
            context: grpc.aio.ServicerContext) -> upload_pb2.QueryUploadStatusResponse:
        return await self._uploader.resumable.query(request)

    async def CancelResumableUpload(  # noqa: N802 - gRPC method name
            self, request: upload_pb2.CancelResumableUploadRequest,
            context: grpc.aio.ServicerContext) -> upload_pb2.CancelResumableUploadResponse:
        return await self._uploader.resumable.cancel(request)

    async def Download(  # noqa: N802 - gRPC method name
            self, request: upload_pb2.DownloadRequest,
            context: grpc.aio.ServicerContext) -> AsyncIterator[upload_pb2.DownloadResponse]:
        async for response in self._downloader.download(request):
            yield response

    async def ImportCsv(  # noqa: N802 - gRPC method name
            self, request_iterator: AsyncIterator[upload_pb2.ImportCsvRequest],
            context: grpc.aio.ServicerContext) -> AsyncIterator[upload_pb2.ImportCsvResponse]:
        async for response in self._importer.run(request_iterator):
            yield response

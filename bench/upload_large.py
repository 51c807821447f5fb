"""1 GiB through the upload service into the filesystem store, against writing the same bytes
straight to the same disk with fsync. Target: >= 0.8x the baseline; upload service peak RSS
< 200 MiB.

    .venv/bin/python -m bench.upload_large [--mib 1024] [--chunk-kib 1024] [--resumable]

--resumable sends the bytes through a resumable session (the path the SDK takes for large
files: persisted every CORRAL_UPLOAD_SESSION_PERSIST_BYTES, crc32c on every message).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import google_crc32c

from bench.common import Timer, peak_rss_mib, record, running_services
from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import catalog_service_pb2_grpc as catalog_grpc
from corral.rpc import CHANNEL_OPTIONS, open_channel
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from corral.upload.v1 import upload_service_pb2_grpc as upload_grpc


def baseline_write(path: Path, chunk: bytes, count: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(count):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_spec(dataset_id: str, chunk: bytes, count: int) -> upload_pb2.UploadSpec:
    return upload_pb2.UploadSpec(dataset_id=dataset_id, remote_dir="/bench", name="big.bin",
                                 size=len(chunk) * count)


def upload_requests(first: upload_pb2.UploadItemRequest, chunk: bytes, count: int,
                    crc32c: int | None = None):
    """`first` carries the spec or an upload_id; then `count` messages of `chunk`."""
    yield first
    for i in range(count):
        yield upload_pb2.UploadItemRequest(write_offset=i * len(chunk), data=chunk,
                                           finish_write=(i == count - 1), crc32c=crc32c)


def upload(stub: upload_grpc.UploadServiceStub, spec: upload_pb2.UploadSpec, chunk: bytes,
           count: int, resumable: bool) -> upload_pb2.UploadItemResponse:
    if not resumable:
        return stub.UploadItem(upload_requests(upload_pb2.UploadItemRequest(spec=spec), chunk,
                                               count))
    upload_id = stub.StartResumableUpload(
        upload_pb2.StartResumableUploadRequest(spec=spec)).upload_id
    return stub.UploadItem(upload_requests(upload_pb2.UploadItemRequest(upload_id=upload_id),
                                           chunk, count, google_crc32c.value(chunk)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--resumable", action="store_true")
    args = parser.parse_args()
    chunk = os.urandom(args.chunk_kib * 1024)
    count = args.mib * 1024 // args.chunk_kib
    total_mib = len(chunk) * count / 2**20

    with tempfile.TemporaryDirectory(prefix="corral-bench-", dir=Path.cwd()) as tmp:
        data_dir = Path(tmp)
        with Timer() as base:
            baseline_write(data_dir / "baseline.bin", chunk, count)
        (data_dir / "baseline.bin").unlink()

        with running_services(("catalog", "upload"), data_dir=data_dir) as services:
            with open_channel(services["catalog"].addr) as ch:
                dataset = catalog_grpc.CatalogServiceStub(ch).CreateDataset(
                    catalog_pb2.CreateDatasetRequest(name="bench-large")).dataset
            with open_channel(services["upload"].addr, options=CHANNEL_OPTIONS) as ch:
                stub = upload_grpc.UploadServiceStub(ch)
                with Timer() as corral:
                    reply = upload(stub, bench_spec(dataset.id, chunk, count), chunk, count,
                                   args.resumable)
            assert reply.item.size == len(chunk) * count, reply
            rss = peak_rss_mib(services["upload"].proc.pid)

    base_mbs, corral_mbs = total_mib / base.seconds, total_mib / corral.seconds
    record("upload_large", [
        {"case": "baseline: write + fsync to the same disk", "MiB": total_mib,
         "seconds": base.seconds, "MiB/s": base_mbs},
        {"case": f"corral upload service ({args.chunk_kib} KiB chunks"
                 f"{', resumable session' if args.resumable else ''})", "MiB": total_mib,
         "seconds": corral.seconds, "MiB/s": corral_mbs,
         "ratio vs baseline": corral_mbs / base_mbs, "target": ">= 0.8",
         "upload peak RSS MiB": rss, "RSS target": "< 200"},
    ])


if __name__ == "__main__":
    main()

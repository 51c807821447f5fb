"""The upload and download domain against an in-memory catalog and a real fs blob store."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from corral.catalog.v1 import resources_pb2
from corral.errors import (
    AlreadyExists,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
)
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.fs import FsBlobStore
from services.upload.downloads import Downloader
from services.upload.registration import REGISTER_RETRY_DELAYS
from services.upload.uploads import Uploader
from upload.fake_catalog import FakeCatalog
from upload.messages import upload_requests

Outcome = resources_pb2.CreateOutcome
Policy = resources_pb2.DuplicatePolicy


class Harness:
    def __init__(self, root: Path) -> None:
        self.store = FsBlobStore(root)
        self.catalog = FakeCatalog()
        self.dataset_id = self.catalog.add_dataset()
        self.uploader = Uploader(self.store, self.catalog, write_batch_bytes=300_000)
        self.downloader = Downloader(self.store, self.catalog, chunk_bytes=100_000)

    def spec(self, name: str = "a.bin", **fields) -> upload_pb2.UploadSpec:
        return upload_pb2.UploadSpec(dataset_id=self.dataset_id, name=name, **fields)

    def upload(self, messages: Iterable[upload_pb2.UploadItemRequest],
               ) -> upload_pb2.UploadItemResponse:
        async def stream() -> AsyncIterator[upload_pb2.UploadItemRequest]:
            for message in messages:
                yield message
        return asyncio.run(self.uploader.upload(stream()))

    def download(self, item_id: str, offset: int = 0, thumbnail: bool = False,
                 ) -> list[upload_pb2.DownloadResponse]:
        async def collect() -> list[upload_pb2.DownloadResponse]:
            request = upload_pb2.DownloadRequest(item_id=item_id, read_offset=offset,
                                                 thumbnail=thumbnail)
            return [m async for m in self.downloader.download(request)]
        return asyncio.run(collect())

    def stored_files(self) -> list[Path]:
        return [p for p in self.store.root.rglob("*") if p.is_file()]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path / "blobs")


@pytest.mark.parametrize("size", [0, 10, 1_000_000])
def test_upload_then_download(harness: Harness, size: int) -> None:
    data = os.urandom(size)
    reply = harness.upload(upload_requests(
        harness.spec(remote_dir="a//b/", size=size, sha256=hashlib.sha256(data).hexdigest()),
        data, chunk=70_000))
    assert reply.outcome == Outcome.CREATE_OUTCOME_CREATED
    item = reply.item
    assert (item.dir, item.name, item.size) == ("/a/b", "a.bin", size)
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.blob_key.startswith(f"items/{harness.dataset_id}/")
    messages = harness.download(item.id)
    assert messages[0].total_size == size
    assert messages[0].content_type == "application/octet-stream"
    assert b"".join(m.data for m in messages) == data
    assert all(len(m.data) <= 100_000 for m in messages)
    assert len(harness.stored_files()) == 1


def test_download_offsets_and_range(harness: Harness) -> None:
    data = os.urandom(250_000)
    item = harness.upload(upload_requests(harness.spec(), data)).item
    for offset in (1, 99_999, 250_000):
        messages = harness.download(item.id, offset)
        assert messages[0].total_size == 250_000
        assert b"".join(m.data for m in messages) == data[offset:]
    for offset in (-1, 250_001):
        with pytest.raises(OutOfRange):
            harness.download(item.id, offset)


def test_download_thumbnail(harness: Harness) -> None:
    item = harness.upload(upload_requests(harness.spec(), b"content")).item
    with pytest.raises(NotFound, match="has no thumbnail yet"):
        harness.download(item.id, thumbnail=True)
    harness.store.put_bytes("thumbnails/x/t.jpg", b"jpeg bytes", "image/jpeg")
    item = harness.catalog.items[(harness.dataset_id, "/a.bin")]
    item.metadata.system.update({"mimetype": "image/png",
                                 "thumbnail": {"key": "thumbnails/x/t.jpg",
                                               "mimetype": "image/jpeg"}})
    thumb = harness.download(item.id, thumbnail=True)
    assert (thumb[0].content_type, thumb[0].data) == ("image/jpeg", b"jpeg bytes")
    assert harness.download(item.id)[0].content_type == "image/png"


def test_download_refuses_folders_and_unknown_items(harness: Harness) -> None:
    folder = resources_pb2.Item(id="f" * 32, dataset_id=harness.dataset_id, dir="/",
                                name="d", filename="/d", type=resources_pb2.ItemType.ITEM_TYPE_DIR)
    harness.catalog.items[(harness.dataset_id, "/d")] = folder
    with pytest.raises(FailedPrecondition):
        harness.download(folder.id)
    with pytest.raises(NotFound):
        harness.download("0" * 32)
    with pytest.raises(InvalidArgument):
        harness.download("")


def test_duplicate_policies(harness: Harness) -> None:
    first = harness.upload(upload_requests(harness.spec(), b"one")).item
    harness.catalog.calls.clear()

    def stream_that_must_not_be_read():
        yield from upload_requests(harness.spec(), b"two", chunk=1, finish=False)
        raise AssertionError("SKIP read past the first message")

    skipped = harness.upload(stream_that_must_not_be_read())
    assert skipped.outcome == Outcome.CREATE_OUTCOME_SKIPPED
    assert skipped.item.blob_key == first.blob_key
    assert "create_item" not in harness.catalog.calls

    with pytest.raises(AlreadyExists):
        harness.upload(upload_requests(
            harness.spec(duplicate_policy=Policy.DUPLICATE_POLICY_FAIL), b"two"))

    overwritten = harness.upload(upload_requests(
        harness.spec(duplicate_policy=Policy.DUPLICATE_POLICY_OVERWRITE), b"three"))
    assert overwritten.outcome == Outcome.CREATE_OUTCOME_OVERWRITTEN
    assert overwritten.item.id == first.id
    assert b"".join(m.data for m in harness.download(first.id)) == b"three"
    # The fake catalog does not release old blobs; the real one does.
    assert len(harness.stored_files()) == 2


def test_skip_race_in_catalog_deletes_the_new_blob(harness: Harness) -> None:
    first = harness.upload(upload_requests(harness.spec(request_id="r1"), b"one")).item
    # With a request_id the up-front check is left to the catalog, which answers SKIPPED.
    again = harness.upload(upload_requests(harness.spec(request_id="r2"), b"two"))
    assert again.outcome == Outcome.CREATE_OUTCOME_SKIPPED
    assert again.item.blob_key == first.blob_key
    assert [p.name for p in harness.stored_files()] == [first.blob_key.rsplit("/", 1)[1]]


BAD_SPECS = [
    ({"dataset_id": ""}, InvalidArgument, "spec.dataset_id"),
    ({"dataset_id": "../x"}, InvalidArgument, "spec.dataset_id"),
    ({"dataset_id": "0" * 32}, NotFound, "0" * 32),
    ({"name": ""}, InvalidArgument, "spec.name"),
    ({"name": "../x"}, InvalidArgument, "spec.name"),
    ({"name": "/abs"}, InvalidArgument, "spec.name"),
    ({"name": "a\\b"}, InvalidArgument, "spec.name"),
    ({"name": "a\x00b"}, InvalidArgument, "spec.name"),
    ({"name": ".."}, InvalidArgument, "spec.name"),
    ({"remote_dir": "/a/../b"}, InvalidArgument, "spec.remote_dir"),
    ({"remote_dir": "a\\b"}, InvalidArgument, "spec.remote_dir"),
    ({"sha256": "abc"}, InvalidArgument, "spec.sha256"),
    ({"size": -1}, InvalidArgument, "spec.size"),
    ({"duplicate_policy": 42}, InvalidArgument, "spec.duplicate_policy"),
]


@pytest.mark.parametrize(("fields", "error", "named"), BAD_SPECS)
def test_bad_specs_write_nothing(harness: Harness, fields: dict, error: type, named: str) -> None:
    spec = harness.spec()
    for field, value in fields.items():
        setattr(spec, field, value)
    with pytest.raises(error, match=named.replace("\\", "\\\\").replace(".", r"\.")):
        harness.upload(upload_requests(spec, b"data"))
    assert harness.stored_files() == []
    assert harness.catalog.items == {}


def test_bad_streams_write_nothing(harness: Harness) -> None:
    data = os.urandom(600_000)
    sha = hashlib.sha256(data).hexdigest()
    cases: list[tuple[list[upload_pb2.UploadItemRequest], type, str]] = []
    cases.append(([], InvalidArgument, "first message must carry spec"))
    cases.append(([upload_pb2.UploadItemRequest(data=b"x", finish_write=True)],
                  InvalidArgument, "first message must carry spec"))
    cases.append(([upload_pb2.UploadItemRequest(upload_id="u1")],
                  InvalidArgument, "upload_id is not a valid id"))
    cases.append(([upload_pb2.UploadItemRequest(upload_id="0" * 32)], NotFound,
                  f"upload_id {'0' * 32} not found"))
    cases.append((list(upload_requests(harness.spec(sha256="0" * 64), data)), DataLoss, sha))
    cases.append((list(upload_requests(harness.spec(size=599_999), data)),
                  InvalidArgument, "spec.size"))
    cases.append((list(upload_requests(harness.spec(size=600_001), data)),
                  InvalidArgument, "received 600000 bytes"))
    cases.append((list(upload_requests(harness.spec(), data, finish=False)),
                  InvalidArgument, "without finish_write"))
    skipped_offset = list(upload_requests(harness.spec(), data, chunk=100_000))
    skipped_offset[3].write_offset += 1
    cases.append((skipped_offset, InvalidArgument, "write_offset 300001, expected 300000"))
    second_spec = list(upload_requests(harness.spec(), data, chunk=100_000))
    second_spec[2].spec.CopyFrom(harness.spec())
    cases.append((second_spec, InvalidArgument, "only the first message"))
    for messages, error, text in cases:
        with pytest.raises(error, match=text):
            harness.upload(messages)
        assert harness.stored_files() == [], text
        assert harness.catalog.items == {}, text


def test_a_definite_refusal_deletes_the_blob(harness: Harness) -> None:
    harness.catalog.create_error = FailedPrecondition("a file stands where a folder must be")
    with pytest.raises(FailedPrecondition):
        harness.upload(upload_requests(harness.spec(), os.urandom(1000)))
    assert harness.stored_files() == []


def test_a_catalog_that_stays_unreachable_keeps_the_blob(harness: Harness) -> None:
    """It may have committed before it went away: an orphan blob beats a dangling item."""
    harness.catalog.create_error = Unavailable("catalog down")
    with pytest.raises(Unavailable, match="retry the upload"):
        harness.upload(upload_requests(harness.spec(), os.urandom(1000)))
    assert len(harness.stored_files()) == 1
    assert harness.catalog.calls.count("create_item") == 1 + len(REGISTER_RETRY_DELAYS)
    assert harness.catalog.items == {}


def test_a_lost_reply_is_retried_and_returns_the_first_result(harness: Harness) -> None:
    harness.catalog.commit_then_fail = Unavailable("connection reset after commit")
    reply = harness.upload(upload_requests(harness.spec(), b"kept"))
    assert reply.outcome == Outcome.CREATE_OUTCOME_CREATED
    assert harness.store.exists(reply.item.blob_key)
    assert len(harness.catalog.items) == 1


def test_cancelled_upload_leaves_nothing(harness: Harness) -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def stream() -> AsyncIterator[upload_pb2.UploadItemRequest]:
            for message in upload_requests(harness.spec(), os.urandom(2_000_000), finish=False):
                yield message
            gate.set()
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(harness.uploader.upload(stream()))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert harness.stored_files() == []


def test_known_datasets_are_not_looked_up_again(harness: Harness) -> None:
    harness.upload(upload_requests(harness.spec("1"), b"x"))
    harness.upload(upload_requests(harness.spec("2"), b"x"))
    assert harness.catalog.calls.count("get_dataset") == 1

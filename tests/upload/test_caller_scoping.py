"""The upload domain acts only within its caller's project: the dataset cache is per project,
the shared CreateBatcher never mixes callers and sends each batch with its caller bound, and
resumable sessions belong to their dataset's project. Against an in-memory catalog that
scopes like the real one (it reads the caller bound to the task making the call)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

from corral.catalog.v1 import catalog_service_pb2 as catalog_pb2
from corral.catalog.v1 import resources_pb2
from corral.errors import CorralError, NotFound
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from services.blobstore.fs import FsBlobStore
from services.common.auth import Principal, Role, bind_caller, caller_or_none
from services.upload.batching import CreateBatcher
from services.upload.bulk import BulkUploads
from services.upload.resumable import SessionSettings
from services.upload.uploads import Uploader
from upload.fake_catalog import FakeCatalog
from upload.messages import bulk_file_messages, session_requests, upload_requests

T = TypeVar("T")

ALICE = Principal(key_id="a" * 16, role=Role.WRITER, project="alpha")
ALICE_READER = Principal(key_id="b" * 16, role=Role.READER, project="alpha")
BOB = Principal(key_id="c" * 16, role=Role.WRITER, project="beta")
ROOT = Principal(key_id="d" * 16, role=Role.ADMIN, project=None, instance_wide=True)


class ScopingCatalog(FakeCatalog):
    """Like the real catalog: a dataset of another project than the caller's is NOT_FOUND.
    Records who each catalog call was made for."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str | None, Role | None, list[str]]] = []
        self.lookups: list[str | None] = []

    def add_project_dataset(self, project: str) -> str:
        dataset_id = self.add_dataset(f"ds-{project}")
        self.datasets[dataset_id].project = project
        return dataset_id

    async def get_dataset(self, dataset_id: str) -> resources_pb2.Dataset:
        principal = caller_or_none()
        self.lookups.append(principal.project if principal else None)
        dataset = await super().get_dataset(dataset_id)
        if principal is not None and not principal.sees(dataset.project):
            raise NotFound(f"dataset {dataset_id} not found")
        return dataset

    async def batch_create_items(self, requests: list[catalog_pb2.CreateItemRequest],
                                 ) -> list[catalog_pb2.CreateItemResponse | CorralError]:
        principal = caller_or_none()
        self.batches.append((principal.project if principal else None,
                             principal.role if principal else None,
                             [request.name for request in requests]))
        await asyncio.sleep(0)
        results: list[catalog_pb2.CreateItemResponse | CorralError] = []
        for request in requests:
            dataset = self.datasets[request.dataset_id]
            if principal is not None and not principal.sees(dataset.project):
                results.append(NotFound(f"dataset {request.dataset_id} not found"))
            else:
                results.append(await self.create_item(request))
        return results


async def as_caller(principal: Principal | None, work: Awaitable[T]) -> T:
    """Runs `work` in its own task with `principal` bound, as the auth interceptor does for
    each call."""
    async def bound() -> T:
        bind_caller(principal)
        return await work
    return await asyncio.ensure_future(bound())


async def stream(messages: Iterable[T]) -> AsyncIterator[T]:
    for message in messages:
        yield message


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.fixture
def catalog() -> ScopingCatalog:
    return ScopingCatalog()


@pytest.fixture
def store(tmp_path: Path) -> FsBlobStore:
    return FsBlobStore(tmp_path / "blobs")


def test_dataset_cache_is_per_project(catalog: ScopingCatalog, store: FsBlobStore) -> None:
    alpha = catalog.add_project_dataset("alpha")
    uploader = Uploader(store, catalog, dataset_cache_seconds=3600)
    spec = upload_pb2.UploadSpec(dataset_id=alpha, name="a.bin")

    async def scenario() -> None:
        first = await as_caller(ALICE, uploader.upload(stream(upload_requests(spec, b"a"))))
        assert first.item.name == "a.bin"
        # Alice's lookup is cached; Bob's upload must ask the catalog for himself.
        bob_spec = upload_pb2.UploadSpec(dataset_id=alpha, name="b.bin")
        with pytest.raises(NotFound):
            await as_caller(BOB, uploader.upload(stream(upload_requests(bob_spec, b"b"))))
        again = upload_pb2.UploadSpec(dataset_id=alpha, name="c.bin")
        await as_caller(ALICE, uploader.upload(stream(upload_requests(again, b"c"))))

    asyncio.run(scenario())
    assert catalog.lookups == ["alpha", "beta"]  # Alice's second upload hit the cache
    assert sorted(name for _, name in catalog.items) == ["/a.bin", "/c.bin"]
    assert len(files_under(store.root)) == 2  # nothing of Bob's was stored


def test_dataset_owned_elsewhere_is_refused_even_if_the_catalog_answers(
        store: FsBlobStore) -> None:
    """Defense in depth: a catalog that did not scope the lookup still cannot let a key of
    one project upload into another project's dataset."""
    catalog = FakeCatalog()
    alpha = catalog.add_dataset()
    catalog.datasets[alpha].project = "alpha"
    uploader = Uploader(store, catalog)
    spec = upload_pb2.UploadSpec(dataset_id=alpha, name="x.bin")
    with pytest.raises(NotFound):
        asyncio.run(as_caller(BOB, uploader.upload(stream(upload_requests(spec, b"x")))))
    assert files_under(store.root) == []
    reply = asyncio.run(as_caller(ROOT, uploader.upload(stream(upload_requests(spec, b"x")))))
    assert reply.item.name == "x.bin"


def test_batches_never_mix_callers(catalog: ScopingCatalog) -> None:
    alpha = catalog.add_project_dataset("alpha")
    beta = catalog.add_project_dataset("beta")
    batcher = CreateBatcher(catalog, max_batch=3)

    def request(dataset_id: str, name: str) -> catalog_pb2.CreateItemRequest:
        return catalog_pb2.CreateItemRequest(dataset_id=dataset_id, dir="/", name=name,
                                             request_id=f"r-{name}")

    async def scenario() -> list[object]:
        calls = [
            as_caller(ALICE, batcher.create(request(alpha, "a1"))),
            as_caller(BOB, batcher.create(request(beta, "b1"))),
            as_caller(ALICE, batcher.create(request(alpha, "a2"))),
            # Bob naming Alice's dataset: refused for him, in his own batch.
            as_caller(BOB, batcher.create(request(alpha, "b-into-alpha"))),
            as_caller(ALICE_READER, batcher.create(request(alpha, "r1"))),
            as_caller(ALICE, batcher.create(request(alpha, "a3"))),  # fills Alice's batch
            as_caller(ALICE, batcher.create(request(alpha, "a4"))),
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    assert isinstance(results[3], NotFound)
    assert not any(isinstance(r, Exception) for i, r in enumerate(results) if i != 3)
    groups: dict[tuple[str | None, Role | None], list[str]] = {}
    for project, role, names in catalog.batches:
        assert len(names) <= 3
        groups.setdefault((project, role), []).extend(names)
    assert groups == {("alpha", Role.WRITER): ["a1", "a2", "a3", "a4"],
                      ("beta", Role.WRITER): ["b1", "b-into-alpha"],
                      ("alpha", Role.READER): ["r1"]}
    # One batch per caller group in the first turn of the loop (Alice's filled at three).
    assert [(p, names) for p, _, names in catalog.batches[:1]] == [("alpha", ["a1", "a2", "a3"])]


def test_bulk_streams_of_two_projects_share_the_batcher(catalog: ScopingCatalog,
                                                        store: FsBlobStore) -> None:
    alpha = catalog.add_project_dataset("alpha")
    beta = catalog.add_project_dataset("beta")
    uploader = Uploader(store, catalog)
    bulk = BulkUploads(uploader, CreateBatcher(catalog))

    async def run(principal: Principal, dataset_id: str, prefix: str,
                  ) -> list[upload_pb2.UploadItemsResult]:
        messages = [message for index in range(5)
                    for message in bulk_file_messages(
                        index, upload_pb2.UploadSpec(dataset_id=dataset_id,
                                                     name=f"{prefix}{index}.bin"),
                        f"{prefix}{index}".encode())]

        async def collect() -> list[upload_pb2.UploadItemsResult]:
            return [result async for reply in bulk.run(stream(messages))
                    for result in reply.results]
        return await as_caller(principal, collect())

    async def scenario() -> tuple[list, list, list]:
        results = await asyncio.gather(run(ALICE, alpha, "a"), run(BOB, beta, "b"),
                                       run(BOB, alpha, "x"))
        await bulk.batcher.close()
        return results

    alice, bob, bob_into_alpha = asyncio.run(scenario())
    assert all(r.HasField("item") for r in alice + bob)
    assert all(r.error.code == "NOT_FOUND" for r in bob_into_alpha)
    assert len(bob_into_alpha) == 5
    for project, _, names in catalog.batches:
        assert {name[0] for name in names} == {"a" if project == "alpha" else "b"}
    assert len(files_under(store.root)) == 10


def test_sessions_belong_to_their_project(catalog: ScopingCatalog, store: FsBlobStore) -> None:
    alpha = catalog.add_project_dataset("alpha")
    uploader = Uploader(store, catalog, sessions=SessionSettings(ttl_seconds=100))
    resumable = uploader.resumable
    data = b"x" * 1000

    async def write(messages: Iterable[upload_pb2.UploadItemRequest],
                    ) -> upload_pb2.UploadItemResponse:
        return await uploader.upload(stream(messages))

    async def scenario() -> None:
        started = await as_caller(ALICE, resumable.start(upload_pb2.StartResumableUploadRequest(
            spec=upload_pb2.UploadSpec(dataset_id=alpha, name="big.bin"))))
        upload_id = started.upload_id
        partial = await as_caller(ALICE, write(session_requests(upload_id, data[:500],
                                                                finish=False)))
        assert partial.persisted_size == 500
        query = upload_pb2.QueryUploadStatusRequest(upload_id=upload_id)
        cancel = upload_pb2.CancelResumableUploadRequest(upload_id=upload_id)
        for attempt in (resumable.query(query), resumable.cancel(cancel),
                        write(session_requests(upload_id, data, start=500))):
            with pytest.raises(NotFound, match=f"upload_id {upload_id} not found"):
                await as_caller(BOB, attempt)
        # The instance-wide admin sees every project's sessions; Alice's reader may query.
        assert (await as_caller(ROOT, resumable.query(query))).persisted_size == 500
        assert (await as_caller(ALICE_READER, resumable.query(query))).persisted_size == 500
        done = await as_caller(ALICE, write(session_requests(upload_id, data, start=500)))
        assert done.item.size == 1000
        with pytest.raises(NotFound):
            await as_caller(BOB, resumable.query(query))
        assert (await as_caller(ALICE, resumable.query(query))).item.id == done.item.id

    asyncio.run(scenario())


def test_session_of_another_projects_dataset_cannot_start(catalog: ScopingCatalog,
                                                          store: FsBlobStore) -> None:
    alpha = catalog.add_project_dataset("alpha")
    uploader = Uploader(store, catalog)
    request = upload_pb2.StartResumableUploadRequest(
        spec=upload_pb2.UploadSpec(dataset_id=alpha, name="big.bin", request_id="same"))
    with pytest.raises(NotFound):
        asyncio.run(as_caller(BOB, uploader.resumable.start(request)))
    assert files_under(store.root) == []


def test_records_written_before_projects_are_in_the_default_project() -> None:
    from services.upload.session_records import SessionRecord
    legacy = b'{"upload_id": "' + b"0" * 32 + (
        b'", "spec": "", "blob_key": "k", "created": 1, "expires": 2}')
    assert SessionRecord.from_json(legacy).project == "default"


def test_csv_import_rows_are_created_for_the_importing_caller(catalog: ScopingCatalog,
                                                              store: FsBlobStore) -> None:
    from services.fetch import Fetcher
    from services.upload.imports import CsvImporter

    alpha = catalog.add_project_dataset("alpha")
    importer = CsvImporter(store, catalog, Fetcher())
    body = "ID,URL,image_bytes\n" + "".join(
        f"l{i},https://example.com/{i}.jpg,\n" for i in range(3)) + "".join(
        f"b{i},,aGVsbG8=\n" for i in range(3))

    def messages() -> list[upload_pb2.ImportCsvRequest]:
        return [upload_pb2.ImportCsvRequest(spec=upload_pb2.ImportCsvSpec(
            dataset_id=alpha, csv_name="rows.csv"), data=body.encode())]

    async def collect(principal: Principal) -> list[upload_pb2.ImportCsvResponse]:
        async def run() -> list[upload_pb2.ImportCsvResponse]:
            return [reply async for reply in importer.run(stream(messages()))]
        return await as_caller(principal, run())

    with pytest.raises(NotFound):
        asyncio.run(collect(BOB))
    assert files_under(store.root) == [] and catalog.batches == []
    replies = asyncio.run(collect(ALICE))
    assert (replies[-1].summary.created, replies[-1].summary.failed) == (6, 0)
    assert {(project, role) for project, role, _ in catalog.batches} == {("alpha", Role.WRITER)}
    assert len(files_under(store.root)) == 3

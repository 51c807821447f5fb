"""BatchCreateItems writes its entries set-based, but each entry must get exactly the result
CreateItem calls made one after the other, in order, would have given, with the same rows and
events left behind."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
from google.protobuf import struct_pb2
from sqlalchemy import select

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from services.catalog.config import CatalogConfig, CatalogLimits
from services.catalog.models import events, items
from tests.catalog.conftest import (
    InProcessCatalog,
    create_item,
    expect_error,
    new_dataset,
    sha256_of,
)

SKIP, FAIL, OVERWRITE = (res.DUPLICATE_POLICY_SKIP, res.DUPLICATE_POLICY_FAIL,
                         res.DUPLICATE_POLICY_OVERWRITE)


def _request(dataset_id: str, dir: str, name: str, policy: int = SKIP,
             request_id: str = "", blob: str = "") -> api.CreateItemRequest:
    return api.CreateItemRequest(
        dataset_id=dataset_id, dir=dir, name=name, size=3, sha256=sha256_of(name),
        blob_key=f"items/{dataset_id}/{blob or uuid.uuid4().hex}", duplicate_policy=policy,
        request_id=request_id)


def _seed(stub, dataset_id: str) -> None:
    """The state both datasets start from."""
    def blob(name: str) -> str:
        return f"items/{dataset_id}/{name}"
    create_item(stub, dataset_id, "/d", "taken.jpg", request_id="seed-1", blob_key=blob("s1"))
    create_item(stub, dataset_id, "/d", "over.jpg", blob_key=blob("s2"))
    # A file where entries want a folder.
    create_item(stub, dataset_id, "/", "file", blob_key=blob("s3"))
    create_item(stub, dataset_id, "/", "skip.jpg", blob_key=blob("s4"))


def _entries(dataset_id: str) -> list[api.CreateItemRequest]:
    """Every kind of entry, including ones that meet each other within the batch."""
    def r(*args, **kwargs):
        return _request(dataset_id, *args, **kwargs)
    return [
        r("/d/e", "new-0.jpg", request_id="n0", blob="b0"),
        r("/d", "taken.jpg", FAIL, blob="b9"),              # exists: ALREADY_EXISTS
        r("/d", "over.jpg", OVERWRITE, blob="b1"),           # exists: OVERWRITTEN
        r("/", "skip.jpg", SKIP),                            # exists: SKIPPED
        r("/file", "x.jpg"),                                 # folder is a file
        r("/d", "taken.jpg", SKIP, request_id="seed-1"),     # replay of the seed
        r("/d/e", "twice.jpg", FAIL, blob="b2"),             # created ...
        r("/d/e", "twice.jpg", FAIL),                        # ... then ALREADY_EXISTS
        r("/d/e", "twice2.jpg", OVERWRITE, blob="b3"),       # created ...
        r("/d/e", "twice2.jpg", OVERWRITE, blob="b4"),       # ... then overwritten
        r("/g", "same-request.jpg", request_id="rq", blob="b5"),
        r("/g", "other-name.jpg", request_id="rq", blob="b8"),  # replays the entry above
        r("/", "d", FAIL),                                   # a folder exists there
        r("/h/i/j", "deep.jpg", blob="b6"),
        r("/h", "new-1.jpg", FAIL, request_id="n1", blob="b7"),
    ]


def _summary(result: api.BatchCreateItemsResult) -> tuple:
    if result.HasField("error"):
        return ("error", result.error.code)
    created = result.created
    return (created.outcome, created.replayed, created.item.filename,
            created.item.blob_key.rsplit("/", 1)[-1], len(created.released_blob_keys))


def _one_call(stub, request: api.CreateItemRequest) -> tuple:
    try:
        reply = stub.CreateItem(request, timeout=10)
    except grpc.RpcError as exc:
        return ("error", exc.code().name)
    return (reply.outcome, reply.replayed, reply.item.filename,
            reply.item.blob_key.rsplit("/", 1)[-1], len(reply.released_blob_keys))


def _state(catalog, dataset_id: str) -> tuple[list, list]:
    with catalog.db.read() as conn:
        rows = conn.execute(select(items.c.filename, items.c.type, items.c.blob_key,
                                   items.c.request_id, items.c.request_outcome)
                            .where(items.c.dataset_id == dataset_id)
                            .order_by(items.c.filename)).all()
        kinds = conn.execute(select(events.c.type, events.c.item_id)
                             .where(events.c.dataset_id == dataset_id)
                             .order_by(events.c.seq)).all()
        ids = dict(conn.execute(select(items.c.id, items.c.filename)
                                .where(items.c.dataset_id == dataset_id)).all())
    strip = dataset_id
    return ([(f, t, b.replace(strip, "") if b else b, rq, o) for f, t, b, rq, o in rows],
            sorted((kind, ids.get(item_id, "gone")) for kind, item_id in kinds))


def test_batch_gives_the_results_of_creates_in_order(stub, catalog):
    batched, single = new_dataset(stub), new_dataset(stub)
    _seed(stub, batched.id)
    _seed(stub, single.id)

    reply = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=_entries(batched.id)),
                                  timeout=30)
    expected = [_one_call(stub, request) for request in _entries(single.id)]
    got = [_summary(result) for result in reply.results]
    # Error codes by name on both sides.
    got = [("error", g[1]) if g[0] == "error" else g for g in got]
    assert got == expected
    assert [g[0] for g in got][1] == "error" and got[4] == ("error", "FAILED_PRECONDITION")
    for index, result in enumerate(reply.results):
        if result.HasField("error"):
            assert result.error.message.startswith(f"requests[{index}]: ")
    assert _state(catalog, batched.id) == _state(catalog, single.id)


def test_batch_whose_file_is_another_entrys_folder_keeps_order(stub, catalog):
    batched, single = new_dataset(stub), new_dataset(stub)
    entries = [("/", "x", "a"), ("/x", "y.jpg", "b"), ("/q", "z.jpg", "c"), ("/q/z.jpg", "w", "d")]
    reply = stub.BatchCreateItems(api.BatchCreateItemsRequest(
        requests=[_request(batched.id, d, n, blob=b) for d, n, b in entries]), timeout=30)
    expected = [_one_call(stub, _request(single.id, d, n, blob=b)) for d, n, b in entries]
    got = [_summary(result) for result in reply.results]
    assert [("error", g[1]) if g[0] == "error" else g for g in got] == expected
    assert expected[1] == ("error", "FAILED_PRECONDITION")
    assert _state(catalog, batched.id) == _state(catalog, single.id)


def test_batch_across_datasets_and_a_missing_one(stub, catalog):
    first, second = new_dataset(stub), new_dataset(stub)
    missing = uuid.uuid4().hex
    requests = [_request(first.id, "/a", "1.jpg"), _request(missing, "/a", "2.jpg"),
                _request(second.id, "/a", "3.jpg"), _request(first.id, "/b", "4.jpg")]
    reply = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=requests), timeout=30)
    assert [r.HasField("error") for r in reply.results] == [False, True, False, False]
    assert reply.results[1].error.code == "NOT_FOUND"
    assert catalog.count_rows(first.id) == (4, 2)  # /a, /b and two files
    assert catalog.count_rows(second.id) == (2, 1)
    again = stub.BatchCreateItems(api.BatchCreateItemsRequest(requests=requests), timeout=30)
    assert [r.created.outcome for r in again.results if r.HasField("created")] == \
        [res.CREATE_OUTCOME_SKIPPED] * 3
    assert catalog.count_rows(first.id) == (4, 2)


def test_a_batch_whose_answer_could_not_fit_is_refused_before_writing(
        limited_catalog: Callable[[CatalogLimits], InProcessCatalog]) -> None:
    # Its answer repeats every item: were the items created, a client that cannot receive the
    # answer would get the same too-large answer on every retry.
    server = limited_catalog(CatalogLimits(max_batch_bytes=20_000))
    stub = server.stub
    dataset = new_dataset(stub)
    metadata = struct_pb2.Struct()
    metadata.update({"note": "x" * 3_000})

    def batch(count: int) -> api.BatchCreateItemsRequest:
        return api.BatchCreateItemsRequest(requests=[
            api.CreateItemRequest(dataset_id=dataset.id, dir="/", name=f"{n}.txt", size=3,
                                  sha256=sha256_of(str(n)), user_metadata=metadata,
                                  blob_key=f"items/{dataset.id}/{uuid.uuid4().hex}")
            for n in range(count)])

    too_large = batch(10)
    assert too_large.ByteSize() > 20_000
    message = expect_error(grpc.StatusCode.INVALID_ARGUMENT,
                           lambda: stub.BatchCreateItems(too_large, timeout=30),
                           "requests:", "at most 20000", "split the batch")
    assert str(too_large.ByteSize()) in message
    assert server.count_rows(dataset.id) == (0, 0)  # nothing written

    reply = stub.BatchCreateItems(batch(5), timeout=30)
    assert all(result.HasField("created") for result in reply.results)


def test_the_batch_budget_is_half_the_message_limit() -> None:
    assert CatalogConfig().catalog_limits().max_batch_bytes == 8 * 1024 * 1024
    assert CatalogConfig(max_message_bytes=65536).catalog_limits().max_batch_bytes == (
        32768)

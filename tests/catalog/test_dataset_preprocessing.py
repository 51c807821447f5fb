"""Dataset preprocessing modes over gRPC, on SQLite and PostgreSQL: SetDatasetPreprocessing,
the dataset_preprocessing filter of leased groups (checked at delivery), and the hand-over of
unacknowledged events when a dataset changes mode."""

from __future__ import annotations

import uuid

import grpc
from sqlalchemy import update

from corral.catalog.v1 import catalog_service_pb2 as api
from corral.catalog.v1 import resources_pb2 as res
from services.catalog.models import leased_groups
from tests.catalog.conftest import create_item, expect_error, new_dataset
from tests.catalog.conftest import take_responses as take

CREATED = res.EVENT_TYPE_CREATED
GLOBAL, PRIVATE, OFF = (res.PREPROCESSING_MODE_GLOBAL, res.PREPROCESSING_MODE_PRIVATE,
                        res.PREPROCESSING_MODE_OFF)


def set_mode(stub, dataset_id: str, mode: int) -> res.Dataset:
    return stub.SetDatasetPreprocessing(api.SetDatasetPreprocessingRequest(
        dataset_id=dataset_id, mode=mode), timeout=10).dataset


def shared(group: str, max_in_flight: int = 0) -> api.SubscribeRequest:
    """Like the shared preprocess pool: every dataset in global mode."""
    return api.SubscribeRequest(consumer_group=group, event_types=[CREATED], lease_seconds=60,
                                max_in_flight=max_in_flight, subscriber_id="pool",
                                start_position=api.START_POSITION_LATEST,
                                dataset_preprocessing=[GLOBAL])


def private(group: str, dataset_id: str) -> api.SubscribeRequest:
    """Like a private worker: one dataset, while it is in private mode."""
    return api.SubscribeRequest(consumer_group=group, event_types=[CREATED], lease_seconds=60,
                                subscriber_id="private", dataset_id=dataset_id,
                                dataset_preprocessing=[PRIVATE])


def ack(stub, group: str, responses) -> None:
    stub.AckEvents(api.AckEventsRequest(consumer_group=group,
                                        event_cursors=[r.event.cursor for r in responses]))


def names(responses) -> list[str]:
    return [r.event.item.name for r in responses]


def groups() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"pool-{suffix}", f"private-{suffix}"


def test_a_new_dataset_is_global_and_the_mode_can_be_switched(stub):
    dataset = new_dataset(stub)
    assert dataset.preprocessing == GLOBAL
    assert set_mode(stub, dataset.id, PRIVATE).preprocessing == PRIVATE
    got = stub.GetDataset(api.GetDatasetRequest(dataset_id=dataset.id)).dataset
    assert got.preprocessing == PRIVATE
    listed = stub.ListDatasets(api.ListDatasetsRequest(page_size=1000)).datasets
    assert {d.id: d.preprocessing for d in listed}[dataset.id] == PRIVATE
    assert set_mode(stub, dataset.id, OFF).preprocessing == OFF
    assert set_mode(stub, dataset.id, OFF).preprocessing == OFF  # idempotent
    assert set_mode(stub, dataset.id, GLOBAL).preprocessing == GLOBAL


def test_bad_requests_name_the_field(stub):
    dataset = new_dataset(stub)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    expect_error(invalid, lambda: set_mode(stub, dataset.id, 42), "mode")
    expect_error(invalid, lambda: set_mode(stub, dataset.id, 0), "mode is required")
    expect_error(invalid, lambda: set_mode(stub, "not-an-id", PRIVATE), "dataset_id")
    expect_error(grpc.StatusCode.NOT_FOUND, lambda: set_mode(stub, uuid.uuid4().hex, PRIVATE),
                 "not found")
    plain = api.SubscribeRequest(consumer_group="x", dataset_preprocessing=[GLOBAL])
    expect_error(invalid, lambda: take(stub, plain, 1, timeout=20), "dataset_preprocessing")
    bad = shared("bad-mode")
    bad.dataset_preprocessing.append(42)
    expect_error(invalid, lambda: take(stub, bad, 1, timeout=20), "dataset_preprocessing")


def test_every_subscriber_of_a_group_asks_for_the_same_modes(stub):
    pool, _ = groups()
    assert take(stub, shared(pool), 1, timeout=0.3) == []
    other = shared(pool)
    other.dataset_preprocessing[:] = [GLOBAL, PRIVATE]
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, lambda: take(stub, other, 1, timeout=20),
                 "dataset_preprocessing")


def test_the_pool_skips_private_and_off_datasets_and_the_private_group_gets_only_its_own(stub):
    pool, own = groups()
    assert take(stub, shared(pool), 1, timeout=0.3) == []  # the pool starts at the head
    public, secret, off = new_dataset(stub), new_dataset(stub), new_dataset(stub)
    set_mode(stub, secret.id, PRIVATE)
    set_mode(stub, off.id, OFF)
    for n in range(3):
        for dataset in (public, secret, off):
            create_item(stub, dataset.id, "/", f"{dataset.name}-{n}.jpg")

    pooled = take(stub, shared(pool), 10, timeout=1.5)
    assert names(pooled) == [f"{public.name}-{n}.jpg" for n in range(3)]
    mine = take(stub, private(own, secret.id), 10, timeout=1.5)
    assert names(mine) == [f"{secret.name}-{n}.jpg" for n in range(3)]
    ack(stub, pool, pooled)
    ack(stub, own, mine)
    # Skipped events count as done for the groups that skip them: no lag is left.
    for group in (pool, own):
        state = stub.GetConsumerGroup(api.GetConsumerGroupRequest(consumer_group=group))
        assert (state.pending_events, state.leased_events) == (0, 0), group


def test_switching_hands_unacknowledged_events_over_and_back(stub):
    pool, own = groups()
    assert take(stub, shared(pool), 1, timeout=0.3) == []
    dataset = new_dataset(stub)
    for n in range(5):
        create_item(stub, dataset.id, "/", f"{n}.jpg")
    # The private group has stepped over them (the dataset is global): only a hand-over can
    # give them to it.
    assert take(stub, private(own, dataset.id), 1, timeout=0.3) == []
    # The pool leases the first item and is busy with it when the dataset turns private.
    in_flight = take(stub, shared(pool, max_in_flight=1), 1)
    assert names(in_flight) == ["0.jpg"]
    set_mode(stub, dataset.id, PRIVATE)

    # The private group gets every item the pool had not finished, the one in flight too
    # (as a second delivery: the worker asks the catalog first and skips it if it was done).
    handed = take(stub, private(own, dataset.id), 10, timeout=1.5)
    assert names(handed) == [f"{n}.jpg" for n in range(5)]
    assert {r.lease.delivery_attempt for r in handed} == {2}
    # The pool finishes what it leased and gets none of the others.
    ack(stub, pool, in_flight)
    assert take(stub, shared(pool), 1, timeout=0.5) == []

    # Back to global with two of them unfinished: they go back to the pool.
    ack(stub, own, handed[:3])
    create_item(stub, dataset.id, "/", "5.jpg")
    set_mode(stub, dataset.id, GLOBAL)
    returned = take(stub, shared(pool), 10, timeout=1.5)
    assert names(returned) == ["3.jpg", "4.jpg", "5.jpg"]
    ack(stub, pool, returned)
    # The private group skips them now (its stream has nothing left for a global dataset).
    assert take(stub, private(own, dataset.id), 1, timeout=0.5) == []


def test_off_means_nobody_and_items_made_meanwhile_stay_unprocessed(stub):
    pool, own = groups()
    assert take(stub, shared(pool), 1, timeout=0.3) == []
    dataset = new_dataset(stub)
    set_mode(stub, dataset.id, OFF)
    assert take(stub, private(own, dataset.id), 1, timeout=0.3) == []
    create_item(stub, dataset.id, "/", "while-off.jpg")
    assert take(stub, shared(pool), 1, timeout=0.5) == []
    assert take(stub, private(own, dataset.id), 1, timeout=0.5) == []
    set_mode(stub, dataset.id, GLOBAL)
    create_item(stub, dataset.id, "/", "after.jpg")
    assert names(take(stub, shared(pool), 10, timeout=1.0)) == ["after.jpg"]


def test_a_group_from_before_the_modes_takes_its_next_subscribers_filter(stub, catalog):
    pool, _ = groups()
    assert take(stub, shared(pool), 1, timeout=0.3) == []
    with catalog.db.engine.begin() as conn:
        conn.execute(update(leased_groups).where(leased_groups.c.name == pool)
                     .values(dataset_modes=None))
    secret = new_dataset(stub)
    set_mode(stub, secret.id, PRIVATE)
    create_item(stub, secret.id, "/", "secret.jpg")
    assert take(stub, shared(pool), 1, timeout=0.5) == []

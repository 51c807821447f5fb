"""list_keys and stat on every blob store: committed objects only, with size and time."""

from __future__ import annotations

import time

import pytest

from corral.errors import NotFound
from services.blobstore import BlobStore


def test_list_keys_returns_committed_objects_under_the_prefix(store: BlobStore) -> None:
    before = time.time()
    store.put_bytes("items/ds1/a", b"aaa")
    store.put_bytes("items/ds1/sub/b", b"bb")
    store.put_bytes("items/ds2/c", b"c")
    store.put_bytes("thumbnails/ab/t.jpg", b"tttt")
    unfinished = store.open_writer("items/ds1/unfinished")
    unfinished.write(b"not yet")

    listed = {info.key: info for info in store.list_keys("items/")}

    assert sorted(listed) == ["items/ds1/a", "items/ds1/sub/b", "items/ds2/c"]
    assert listed["items/ds1/a"].size == 3
    # Stores round times to the second (S3) and clocks may differ slightly.
    assert all(info.modified >= before - 2 for info in listed.values())
    assert [i.key for i in store.list_keys("items/ds1/s")] == ["items/ds1/sub/b"]
    assert [i.key for i in store.list_keys("thumbnails/")] == ["thumbnails/ab/t.jpg"]
    assert list(store.list_keys("nothing/")) == []
    unfinished.abort()


def test_list_keys_skips_session_data(store: BlobStore) -> None:
    sessions = store.session_storage()
    upload_id = "0" * 32
    sessions.save_record(upload_id, b"{}")
    state = sessions.create_data(upload_id, "items/ds/resumed")
    writer = sessions.open_writer(upload_id, "items/ds/resumed", state, persist_every=1)
    writer.write(b"persisted bytes")
    writer.persist()
    writer.close()

    assert list(store.list_keys("")) == []
    sessions.discard_data(upload_id, "items/ds/resumed", state)


def test_stat(store: BlobStore) -> None:
    store.put_bytes("items/ds/x", b"12345")
    info = store.stat("items/ds/x")
    assert (info.key, info.size) == ("items/ds/x", 5)
    assert info.modified == pytest.approx(time.time(), abs=60)
    with pytest.raises(NotFound):
        store.stat("items/ds/missing")

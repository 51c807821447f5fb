"""The fs store's write-behind and shared directory fsyncs: same bytes, same guarantees."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.blobstore import dirsync
from services.blobstore.dirsync import DirSyncer
from services.blobstore.fs import WRITE_BEHIND_BYTES, FsBlobStore


def test_a_write_spanning_several_write_behind_windows_round_trips(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    data = os.urandom(2 * WRITE_BEHIND_BYTES + 12345)
    writer = store.open_writer("items/ds/big")
    step = 3 << 20
    for start in range(0, len(data), 2 * step):
        writer.write_many([data[start:start + step], b"", data[start + step:start + 2 * step]])
    writer.commit()
    read = b"".join(store.iter_chunks("items/ds/big"))
    assert hashlib.sha256(read).digest() == hashlib.sha256(data).digest()


def test_concurrent_commits_share_directory_fsyncs_and_all_wait_for_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    renamed: list[int] = []  # renames done before each fsync started
    lock = threading.Lock()
    real = dirsync.fsync_dir

    def slow_fsync(path: Path | str) -> None:
        with lock:
            renamed.append(len(list(Path(path).iterdir())))
        threading.Event().wait(0.01)
        real(path)

    monkeypatch.setattr(dirsync, "fsync_dir", slow_fsync)
    store = FsBlobStore(tmp_path / "blobs")

    def put(i: int) -> None:
        store.put_bytes(f"items/ds/{i}", b"x")
        # When put returns, a fsync that started after this rename has finished.
        with lock:
            synced.append(i)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(64)))
    assert sorted(synced) == list(range(64))
    assert len(renamed) < 64  # shared
    assert renamed[-1] == 64  # the last fsync saw every rename


def test_a_failed_directory_fsync_fails_every_commit_it_covered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path | str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(dirsync, "fsync_dir", broken)
    store = FsBlobStore(tmp_path / "blobs")
    with pytest.raises(OSError, match="disk gone"):
        store.put_bytes("items/ds/x", b"data")
    assert not store.exists("items/ds/x")  # a rename not known durable is taken back
    assert list(store.tmp_dir.iterdir()) == []


def test_the_syncer_forgets_idle_directories(tmp_path: Path) -> None:
    syncer = DirSyncer()
    syncer.sync(tmp_path)
    syncer.sync(tmp_path)
    assert syncer._dirs == {}

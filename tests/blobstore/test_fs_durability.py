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


def test_commit_many_fsyncs_each_file_and_each_folder_once_and_fails_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    for folder in ("items/a", "items/b"):
        store.ensure_dir(store.root / folder)
    synced_files: list[int] = []
    synced_folders: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(dirsync, "fsync_dir", lambda path: synced_folders.append(str(path)))
    monkeypatch.setattr(os, "fsync", lambda fd: (synced_files.append(fd), real_fsync(fd)))
    keys = ["items/a/1", "items/a/2", "items/b/3", "items/a/4"]
    writers = [store.open_writer(key) for key in keys]
    for index, writer in enumerate(writers):
        writer.write(f"data {index}".encode())
    writers[1].abort()  # fails in commit_many: a closed writer
    errors = store.commit_many(writers)
    assert [error is None for error in errors] == [True, False, True, True]
    assert isinstance(errors[1], ValueError)
    assert len(synced_files) == 3  # every committed file was fsynced before its rename
    assert sorted(synced_folders) == [str(store.root / "items/a"), str(store.root / "items/b")]
    assert [store.exists(key) for key in keys] == [True, False, True, True]
    assert b"".join(store.iter_chunks("items/b/3")) == b"data 2"
    assert list(store.tmp_dir.iterdir()) == []


def test_commit_many_takes_back_the_renames_a_failed_folder_fsync_covered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FsBlobStore(tmp_path / "blobs")
    store.put_bytes("items/ok/0", b"earlier")  # creates the folders (fsynced for real)

    def broken(path: Path | str) -> None:
        if str(path).endswith("/bad"):
            raise OSError("disk gone")
        dirsync_real(path)

    dirsync_real = dirsync.fsync_dir
    monkeypatch.setattr(dirsync, "fsync_dir", broken)
    writers = [store.open_writer(key) for key in ("items/ok/1", "items/bad/2", "items/bad/3")]
    for writer in writers:
        writer.write(b"x")
    errors = store.commit_many(writers)
    assert errors[0] is None
    assert all(isinstance(error, OSError) for error in errors[1:])
    assert store.exists("items/ok/1")
    assert not store.exists("items/bad/2") and not store.exists("items/bad/3")
    assert list(store.tmp_dir.iterdir()) == []

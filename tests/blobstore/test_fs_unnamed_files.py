"""The fs store writes objects as unnamed files (O_TMPFILE) linked to their key at commit:
nothing shows while they are written, and a writer that dies leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from corral.errors import InvalidArgument
from services.blobstore.base import UnfinishedWrite
from services.blobstore.fs import FsBlobStore

KILLED_BYTES = 32 * 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> FsBlobStore:
    store = FsBlobStore(tmp_path / "blobs")
    if not store.unnamed_files:
        # Only a filesystem (or a container without /proc) that cannot is an excuse.
        try:
            os.close(os.open(store.tmp_dir, os.O_TMPFILE | os.O_RDWR, 0o600))
        except OSError:
            pytest.skip("this filesystem makes no unnamed files")
        assert not os.path.isdir("/proc/self/fd"), "O_TMPFILE works here, the store's probe not"
        pytest.skip("no /proc/self/fd to link unnamed files through")
    return store


def every_file(store: FsBlobStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def test_nothing_shows_until_commit_and_an_abort_leaves_nothing(store: FsBlobStore) -> None:
    writer = store.open_writer("items/ds/a")
    writer.write(b"partial")
    assert every_file(store) == []
    writer.abort()
    assert every_file(store) == []
    writer = store.open_writer("items/ds/b")
    writer.write(b"whole")
    writer.commit()
    assert every_file(store) == ["items/ds/b"]
    assert (store.root / "items/ds/b").read_bytes() == b"whole"
    assert oct((store.root / "items/ds/b").stat().st_mode & 0o777) == oct(0o644)


def test_a_killed_writer_leaves_no_file(store: FsBlobStore) -> None:
    """SIGKILL in the middle of a write: the kernel frees the unnamed file with the process.
    (A named temporary file would stay in .tmp/ for good.)"""
    script = textwrap.dedent(f"""
        import os
        import sys
        from services.blobstore.fs import FsBlobStore
        store = FsBlobStore({str(store.root)!r})
        writer = store.open_writer("items/ds/killed")
        writer.write(b"x" * {KILLED_BYTES})
        os.fsync(writer._fd)  # its blocks allocated, not only reserved
        print("written", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout is not None and child.stdout.readline() == "written\n"
        free_before_kill = os.statvfs(store.root).f_bfree
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert every_file(store) == []
    assert not store.exists("items/ds/killed")
    # Its 32 MiB of blocks came back (nothing else in this test writes meanwhile; other
    # files' delayed allocations are already counted out of f_bfree).
    stat = os.statvfs(store.root)
    assert (stat.f_bfree - free_before_kill) * stat.f_frsize >= KILLED_BYTES // 2


def test_replacing_an_object_swaps_it_whole(store: FsBlobStore) -> None:
    store.put_bytes("thumbnails/aa/t.jpg", b"first")
    store.put_bytes("thumbnails/aa/t.jpg", b"second")
    assert (store.root / "thumbnails/aa/t.jpg").read_bytes() == b"second"
    assert every_file(store) == ["thumbnails/aa/t.jpg"]


def test_a_folder_removed_meanwhile_is_made_again(store: FsBlobStore) -> None:
    store.put_bytes("items/gone/1", b"1")
    (store.root / "items/gone/1").unlink()
    (store.root / "items/gone").rmdir()
    store.put_bytes("items/gone/2", b"2")  # the store still believes the folder exists
    assert every_file(store) == ["items/gone/2"]


def test_a_failed_fsync_after_the_link_takes_the_key_back(
        store: FsBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError("disk gone")

    writer = store.open_writer("items/ds/x")
    writer.write(b"data")
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk gone"):
        writer.commit()
    assert every_file(store) == []


def test_a_filesystem_without_unnamed_files_falls_back_to_named_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.blobstore import fs

    monkeypatch.setattr(fs, "_O_TMPFILE", 0)
    store = FsBlobStore(tmp_path / "blobs")
    assert not store.unnamed_files
    writer = store.open_writer("items/ds/a")
    writer.write(b"partial")
    assert [p.name.startswith("upload-") for p in store.tmp_dir.iterdir()] == [True]
    writer.commit()
    assert every_file(store) == ["items/ds/a"]


def test_only_the_stores_own_temporary_files_can_be_discarded(store: FsBlobStore) -> None:
    (store.root / "items").mkdir()
    (store.root / "items" / "kept").write_bytes(b"k")
    for handle in ("../items/kept", "kept", "upload-x/../../items/kept"):
        with pytest.raises(InvalidArgument):
            store.discard_unfinished(UnfinishedWrite("", handle, 0, 0.0))
    assert (store.root / "items" / "kept").exists()

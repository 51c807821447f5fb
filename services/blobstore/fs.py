"""A blob store in a local directory: one file per key. An object is written to an unnamed
file (O_TMPFILE, in `<root>/.tmp/`) that is linked to its key only at commit, so a key is
either absent or complete, and a writer that dies leaves nothing behind: the kernel frees an
unnamed file with its last descriptor. Where the filesystem cannot make unnamed files, a named
temporary file in `<root>/.tmp/` is renamed into place instead."""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, BinaryIO

from corral.errors import InvalidArgument, NotFound, OutOfRange
from services.blobstore.base import BlobInfo, BlobStore, BlobWriter, UnfinishedWrite
from services.blobstore.dirsync import DirSyncer, fsync_dir
from services.blobstore.keys import check_key

if TYPE_CHECKING:
    from services.blobstore.fs_sessions import FsSessionStorage

TMP_DIR_NAME = ".tmp"
SESSIONS_DIR_NAME = ".sessions"
_RESERVED_DIRS = (TMP_DIR_NAME, SESSIONS_DIR_NAME)
FILE_MODE = 0o644
# Write-behind window (see FsBlobWriter._write_behind).
WRITE_BEHIND_BYTES = 16 * 1024 * 1024
_IOV_MAX = 1024
_fadvise = getattr(os, "posix_fadvise", None)
_MAX_KNOWN_DIRS = 10_000
_TMP_PREFIX = uuid.uuid4().hex[:16]
_tmp_numbers = itertools.count()
_TMP_NAME_PREFIXES = ("upload-", "probe-")
_TMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0))
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
# Not O_EXCL: with O_TMPFILE it forbids the link that commits the file.
_UNNAMED_FLAGS = os.O_RDWR | _O_TMPFILE | getattr(os, "O_CLOEXEC", 0)


class FsBlobWriter(BlobWriter):
    """Streams into a temporary file; commit() gives it its key (links an unnamed file, or
    renames a named one), makes it durable, and fsyncs the folder so its entry survives a
    crash too."""

    def __init__(self, store: FsBlobStore, final_path: Path, fd: int, tmp_path: Path | None,
                 offset: int = 0) -> None:
        """Writes `fd` (the open file at `tmp_path`, or an unnamed file: None) from `offset`
        on."""
        self._store = store
        self._final_path = self.final_path = final_path
        self._fd = fd
        self._tmp_path = tmp_path
        self._committed = False
        # Write-behind offsets: dropped <= behind <= written.
        self._written = self._behind = self._dropped = offset

    def write(self, data: bytes) -> None:
        self.write_many([data])

    def write_many(self, chunks: list[bytes]) -> None:
        if self._fd < 0:
            raise ValueError("blob writer is closed")
        views = [memoryview(c) for c in chunks if c]
        while views:
            written = os.writev(self._fd, views[:_IOV_MAX])
            self._written += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if written:
                views[0] = views[0][written:]
        if self._written - self._behind >= WRITE_BEHIND_BYTES:
            self._write_behind()

    def _write_behind(self) -> None:
        """Starts writing the newest window to disk now rather than all at once in commit's
        fsync, so disk I/O overlaps receiving, and drops the window before it (written back by
        now) from the page cache, so a large upload recycles a few windows of pages instead of
        filling the cache: touching fresh pages is what makes big writes CPU-heavy.
        POSIX_FADV_DONTNEED starts writeback of dirty pages and drops only clean ones;
        durability still comes from commit's fsync alone."""
        if _fadvise is not None:
            _fadvise(self._fd, self._behind, self._written - self._behind,
                     os.POSIX_FADV_DONTNEED)
            if self._behind > self._dropped:
                _fadvise(self._fd, self._dropped, self._behind - self._dropped,
                         os.POSIX_FADV_DONTNEED)
        self._dropped, self._behind = self._behind, self._written

    def start_writeback(self) -> None:
        """Asks the kernel to start writing the file out now (durability still comes from
        the fsync in commit)."""
        if _fadvise is not None and self._fd >= 0:
            with contextlib.suppress(OSError):
                _fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def commit(self) -> None:
        self.sync_and_rename()
        self.sync_rename()

    def sync_and_rename(self) -> None:
        """The first half of commit(): the content durable and renamed to its key (which is
        not durable before sync_rename)."""
        if self._fd < 0:
            raise ValueError("blob writer is closed")
        try:
            os.fchmod(self._fd, FILE_MODE)
            if self._tmp_path is None:
                self._store.link_into_place(self._fd, self._final_path)
            else:
                os.fsync(self._fd)
                self._store.rename_into_place(self._tmp_path, self._final_path)
            os.close(self._fd)
            self._fd = -1
        except BaseException:
            self.abort()
            raise

    def sync_rename(self, synced: bool = False) -> None:
        """The second half: fsyncs the folder (unless the caller did: `synced`), so the
        rename survives a crash."""
        if not synced:
            try:
                self._store.dir_syncer.sync(self._final_path.parent)
            except BaseException:
                self.take_back()
                raise
        self._committed = True

    def take_back(self) -> None:
        """The rename may not survive a crash, so nothing may refer to it: take it back."""
        self._final_path.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not self._committed and self._tmp_path is not None:
            self._tmp_path.unlink(missing_ok=True)


class FsBlobStore(BlobStore):
    shares_commit_work = True  # one folder fsync serves every rename into that folder

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = self.root / TMP_DIR_NAME
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # Concurrent commits into one folder share its fsync (see dirsync.py).
        self.dir_syncer = DirSyncer()
        # Folders known to exist (nothing removes folders; a rename that finds one gone
        # creates it again), so a commit does not stat its folder's path each time.
        self._known_dirs: set[Path] = set()
        # Any directory's descriptor: os.link calls linkat, which can follow the
        # /proc/self/fd link of an unnamed file, only when given one.
        self._dir_fd = -1
        self.unnamed_files = self._can_link_unnamed_files()

    def _can_link_unnamed_files(self) -> bool:
        """Whether this filesystem makes unnamed files and /proc lets them be linked (not in
        every container, not on every filesystem): tried once, on a throwaway file."""
        if not _O_TMPFILE or not os.path.isdir("/proc/self/fd"):
            return False
        probe = self.tmp_dir / f"{_TMP_NAME_PREFIXES[1]}{_TMP_PREFIX}{next(_tmp_numbers):x}"
        try:
            self._dir_fd = os.open(self.tmp_dir, os.O_RDONLY | os.O_DIRECTORY)
            weakref.finalize(self, os.close, self._dir_fd)
            fd = os.open(self.tmp_dir, _UNNAMED_FLAGS, 0o600)
            try:
                self._link_fd(fd, probe)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError:
            return False
        return True

    def _link_fd(self, fd: int, path: Path) -> None:
        os.link(f"/proc/self/fd/{fd}", path, dst_dir_fd=self._dir_fd, follow_symlinks=True)

    def link_into_place(self, fd: int, final_path: Path) -> None:
        """Gives the unnamed file `fd` its key and makes it durable (not the folder entry:
        sync_rename). It is at its key, complete, a moment before it is durable: nothing
        refers to a key before its commit returns, and a key a crash left incomplete is an
        orphan, which orphan collection removes."""
        folder = final_path.parent
        self._ensure_known_dir(folder)
        try:
            self._link_fd(fd, final_path)
        except FileNotFoundError:  # the folder went away meanwhile
            self._known_dirs.discard(folder)
            self.ensure_dir(folder)
            self._link_fd(fd, final_path)
        except FileExistsError:
            # Replacing an object (a thumbnail made again): durable first, then swapped in
            # whole, as a rename does.
            os.fsync(fd)
            tmp_path = self._new_tmp_path()
            self._link_fd(fd, tmp_path)
            try:
                os.replace(tmp_path, final_path)
            except BaseException:
                tmp_path.unlink(missing_ok=True)
                raise
            return
        try:
            # After the link: it changed the file's link count, which must be durable too.
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.stat(final_path), os.fstat(fd)):
                    final_path.unlink()
            raise

    def _ensure_known_dir(self, folder: Path) -> None:
        if folder not in self._known_dirs:
            self.ensure_dir(folder)
            if len(self._known_dirs) >= _MAX_KNOWN_DIRS:
                self._known_dirs.clear()  # bounded: a forgotten folder is only stat'ed again
            self._known_dirs.add(folder)

    def rename_into_place(self, tmp_path: Path, final_path: Path) -> None:
        folder = final_path.parent
        self._ensure_known_dir(folder)
        try:
            os.replace(tmp_path, final_path)
        except FileNotFoundError:
            if not os.path.exists(tmp_path):
                raise
            self._known_dirs.discard(folder)
            self.ensure_dir(folder)
            os.replace(tmp_path, final_path)

    def commit_many(self, writers: Sequence[BlobWriter]) -> list[Exception | None]:
        """Each file is fsynced and renamed, then every folder they went to is fsynced once
        for all of them (a folder fsync covers every rename before it)."""
        errors: list[Exception | None] = [None] * len(writers)
        by_folder: dict[Path, list[int]] = {}
        # Writeback of every file starts before the first fsync waits, so the fsyncs that
        # follow share the disk's work instead of each starting its own in turn.
        for writer in writers:
            assert isinstance(writer, FsBlobWriter)
            writer.start_writeback()
        for index, writer in enumerate(writers):
            assert isinstance(writer, FsBlobWriter)
            try:
                writer.sync_and_rename()
            except Exception as exc:  # noqa: BLE001 - that writer's failure alone
                errors[index] = exc
            else:
                by_folder.setdefault(writer.final_path.parent, []).append(index)
        for folder, indexes in by_folder.items():
            try:
                self.dir_syncer.sync(folder)
            except Exception as exc:  # noqa: BLE001 - fails the writers it was meant to cover
                for index in indexes:
                    writers[index].take_back()  # type: ignore[attr-defined]
                    errors[index] = exc
                continue
            for index in indexes:
                writers[index].sync_rename(synced=True)  # type: ignore[attr-defined]
        return errors

    def path_for(self, key: str) -> Path:
        """The file holding `key`; refuses keys that could leave the root or hit .tmp/ or
        .sessions/."""
        check_key(key)
        if key.split("/", 1)[0] in _RESERVED_DIRS:
            raise InvalidArgument(f"blob key must not start with {key.split('/', 1)[0]}/: "
                                  f"{key!r}")
        return self.root / key

    def ensure_dir(self, directory: Path) -> None:
        """Creates `directory` below the root, fsyncing each parent whose entries changed."""
        missing: list[Path] = []
        current = directory
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            fsync_dir(path.parent)

    def open_writer(self, key: str) -> FsBlobWriter:
        final_path = self.path_for(key)
        if self.unnamed_files:
            return FsBlobWriter(self, final_path, os.open(self.tmp_dir, _UNNAMED_FLAGS, 0o600),
                                None)
        # Like tempfile.mkstemp (O_EXCL, mode 0600, no symlink followed) with a name that is
        # unique per process by construction, without mkstemp's random name per call.
        while True:
            tmp_path = self._new_tmp_path()
            try:
                fd = os.open(tmp_path, _TMP_FLAGS, 0o600)
            except FileExistsError:  # left by an earlier process that had the same prefix
                continue
            return FsBlobWriter(self, final_path, fd, tmp_path)

    def _new_tmp_path(self) -> Path:
        return self.tmp_dir / f"{_TMP_NAME_PREFIXES[0]}{_TMP_PREFIX}{next(_tmp_numbers):x}"

    def session_storage(self) -> FsSessionStorage:
        from services.blobstore.fs_sessions import FsSessionStorage

        return FsSessionStorage(self)

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> None:
        writer = self.open_writer(key)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def put_many(self, objects: list[tuple[str, bytes, str]]) -> list[Exception | None]:
        """Group commit (commit_many): thumbnails spread over 256 folders, so one-by-one
        commits shared no folder fsync."""
        results: list[Exception | None] = [None] * len(objects)
        writers: list[BlobWriter] = []
        owners: list[int] = []
        for index, (key, data, _content_type) in enumerate(objects):
            writer: FsBlobWriter | None = None
            try:
                writer = self.open_writer(key)
                writer.write(data)
            except Exception as exc:  # noqa: BLE001 - reported per object
                if writer is not None:
                    writer.abort()
                results[index] = exc
                continue
            writers.append(writer)
            owners.append(index)
        for index, error in zip(owners, self.commit_many(writers), strict=True):
            results[index] = error
        return results

    def _open(self, key: str) -> BinaryIO:
        try:
            return open(self.path_for(key), "rb")  # noqa: SIM115 - closed by the reader
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"blob {key} not found") from None

    def iter_chunks(self, key: str, offset: int = 0,
                    chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        if offset < 0:
            raise OutOfRange(f"offset {offset} is negative")
        file = self._open(key)
        return self._read_from(file, offset, chunk_size)

    @staticmethod
    def _read_from(file: BinaryIO, offset: int, chunk_size: int) -> Iterator[bytes]:
        with file:
            file.seek(offset)
            while chunk := file.read(chunk_size):
                yield chunk

    def size(self, key: str) -> int:
        return self.stat(key).size

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def stat(self, key: str) -> BlobInfo:
        try:
            stat = self.path_for(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"blob {key} not found") from None
        if not S_ISREG(stat.st_mode):
            raise NotFound(f"blob {key} not found")
        return BlobInfo(key, stat.st_size, stat.st_mtime)

    def list_keys(self, prefix: str) -> Iterator[BlobInfo]:
        """Walks only the folder the prefix names (committed objects are renamed into place,
        so every regular file there is complete; .tmp/ and .sessions/ are never walked)."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if folder:
            check_key(folder)
            if folder.split("/", 1)[0] in _RESERVED_DIRS:
                return
        yield from self._walk(self.root / folder, folder, prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[BlobInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if not rel and entry.name in _RESERVED_DIRS:
                continue
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(f"{key}/"):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while walking
                    continue
                yield BlobInfo(key, stat.st_size, stat.st_mtime)

    def unfinished_writes(self, untouched_before: float) -> Iterator[UnfinishedWrite]:
        """Named temporary files: unnamed ones vanish with their writer, but where the
        filesystem has none (and from versions before them) a killed writer's file stays."""
        for entry in os.scandir(self.tmp_dir):
            if not entry.name.startswith(_TMP_NAME_PREFIXES):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # committed or aborted meanwhile
                continue
            if S_ISREG(stat.st_mode) and stat.st_mtime < untouched_before:
                yield UnfinishedWrite("", entry.name, stat.st_size, stat.st_mtime)

    def discard_unfinished(self, write: UnfinishedWrite) -> None:
        if "/" in write.handle or not write.handle.startswith(_TMP_NAME_PREFIXES):
            raise InvalidArgument(f"not a temporary file of this store: {write.handle!r}")
        (self.tmp_dir / write.handle).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self.path_for(key)
        if not path.is_file():
            raise NotFound(f"blob {key} not found")
        yield path

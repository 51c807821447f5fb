"""What a process is writing into the fs store's temp folder. The store writes objects as
unnamed files (O_TMPFILE), which no directory listing shows until they are committed; a
process's descriptors do ("<root>/.tmp/#<inode> (deleted)")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.blobstore.fs import FsBlobStore


def files_being_written(pid: int, tmp_dir: Path) -> list[str]:
    """The files process `pid` holds open under `tmp_dir`, as ".tmp/<name>"."""
    prefix = f"{tmp_dir}/"
    held = []
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:  # the process is gone, and its files with it
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith(prefix):
            held.append(f"{tmp_dir.name}/{target[len(prefix):]}")
    return sorted(held)


def stored_and_open_files(store: FsBlobStore, writer_pid: int) -> list[str]:
    """Every file in the fs store (blobs, named temp files, resumable sessions) and the
    unnamed ones process `writer_pid` is writing, relative to the store's root."""
    return sorted([str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()]
                  + files_being_written(writer_pid, store.tmp_dir))

"""tqdm bars for `corral upload`: files done and bytes sent, on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm

from corral.client import UploadEvent


class UploadProgressBars:
    """An UploadEvent callback drawing two bars; draws nothing when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._files: tqdm | None = None
        self._bytes: tqdm | None = None

    def __call__(self, event: UploadEvent) -> None:
        if not self.enabled:
            return
        if event.kind == "planned":
            self._files = tqdm(total=event.total_files, unit="file", desc="files",
                               position=0, file=sys.stderr, dynamic_ncols=True)
            self._bytes = tqdm(total=event.total_bytes, unit="B", unit_scale=True,
                               unit_divisor=1024, desc="bytes", position=1, file=sys.stderr,
                               dynamic_ncols=True)
        elif event.kind == "bytes" and self._bytes is not None:
            self._bytes.update(event.bytes)
        elif event.kind == "finished" and self._files is not None:
            self._files.update(1)
            if self._bytes is not None and event.unsent_bytes:
                self._bytes.update(event.unsent_bytes)
            if event.failure is not None:
                self._files.set_postfix(failed=event.failure.local_path, refresh=False)

    def close(self) -> None:
        for bar in (self._bytes, self._files):
            if bar is not None:
                bar.close()

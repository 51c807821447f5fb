"""Keeps freed memory in the process instead of handing it back to the kernel at once.

Uploads stream through ~1 MiB buffers (gRPC's receive slices, the message bytes, batches).
With glibc's defaults each one is mmapped or carved from a heap top that is trimmed as soon
as it is freed, so every buffer lands on fresh pages: measured on the 1 GiB benchmark that was
~550,000 page faults per GiB and about half of the service's CPU. Raising the mmap and trim
thresholds lets buffers be reused (~12,000 faults per GiB). The cost is bounded: at most
TRIM_BYTES of free heap is kept per malloc arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("corral.upload")

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum: larger blocks are always mmapped
TRIM_BYTES = 64 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h


def keep_freed_memory() -> bool:
    """Tunes glibc malloc for this process; a no-op (False) on other C libraries."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    ok = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
          and mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES) == 1)
    if not ok:
        log.warning("could not tune malloc; large uploads will use more CPU")
    return ok

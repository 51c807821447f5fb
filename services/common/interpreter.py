"""How every service tunes the Python interpreter before it serves: the garbage collector and
the interval after which a thread waiting for the interpreter lock makes its holder let go."""

from __future__ import annotations

import gc
import sys

# Cyclic garbage collection after this many new container objects (Python's default: 700).
# A request allocates hundreds (messages, dicts, futures) that reference counting frees, so at
# 700 the collector ran a few hundred times per 5,000 uploaded items and took ~8 % of the
# upload service's CPU (gc.callbacks, bench.small_images); cycles still get collected.
GC_GEN0_THRESHOLD = 20_000

# A service's event loop thread runs Python most of the time it is busy, and gives the lock up
# only for moments (a socket call, an epoll that returns at once), which it usually takes back
# before a waiting thread wakes. An I/O thread coming back from a short system call (write,
# link, fsync of a small blob) therefore waits until the loop blocks for real or the interval
# runs out. At Python's 5 ms, the upload service's threads spent more time waiting for the
# lock than in the kernel: committing 7 small files took ~9 ms without any fsync. At 0.5 ms,
# bulk uploads ran ~12 % faster (bench.small_images harness, docs/benchmarks.md), while the
# one-call and end-to-end paths, which keep both cores busy anyway, did not change.
DEFAULT_SWITCH_INTERVAL_MS = 0.5


def tune_garbage_collection() -> None:
    """Called once everything is imported: the objects alive then (modules, classes,
    descriptors) live as long as the process, so the collector stops scanning them."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def set_switch_interval(milliseconds: float) -> None:
    """Sets the interpreter's switch interval; a value that is not positive stops the service
    with a message naming the setting."""
    if not milliseconds > 0:
        raise SystemExit(f"invalid setting: CORRAL_SWITCH_INTERVAL_MS must be more than 0, "
                         f"got {milliseconds!r}")
    sys.setswitchinterval(milliseconds / 1000)


def tune_interpreter(switch_interval_ms: float = DEFAULT_SWITCH_INTERVAL_MS) -> None:
    set_switch_interval(switch_interval_ms)
    tune_garbage_collection()

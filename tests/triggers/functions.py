"""Trigger functions the tests run (in-process workers and `corral worker` subprocesses)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

# In-process workers: calls per (trigger, item id), and a gate a slow function waits on.
CALLS: dict[tuple[str, str], int] = defaultdict(int)
LOCK = threading.Lock()
GATE = threading.Event()
FAILURES_LEFT: dict[str, int] = {}


def _count(item, ctx) -> int:
    with LOCK:
        CALLS[(ctx.trigger, item["id"])] += 1
        return CALLS[(ctx.trigger, item["id"])]


def digest(item, ctx) -> None:
    """Reads the bytes, stores their sha256 in its namespace and a user key."""
    runs = _count(item, ctx)
    with ctx.open() as stream:
        data = stream.read()
    ctx.set_system({"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    ctx.set_system({"runs": runs})
    if ctx.event_type == "created":
        ctx.set_user_metadata({"seen_by": ctx.trigger})


async def async_digest(item, ctx) -> None:
    await asyncio.sleep(0)
    data = await asyncio.to_thread(ctx.read_bytes)
    ctx.set_system({"bytes": len(data)})
    _count(item, ctx)


def flaky(item, ctx) -> None:
    """Fails until FAILURES_LEFT[name] runs out."""
    _count(item, ctx)
    with LOCK:
        left = FAILURES_LEFT.get(item["name"], 0)
        FAILURES_LEFT[item["name"]] = left - 1
    if left > 0:
        raise RuntimeError(f"flaky: {left} failures left")
    ctx.set_system({"ok": True})


def gated(item, ctx) -> None:
    """Blocks until the test opens GATE."""
    _count(item, ctx)
    GATE.wait(120)


def quick(item, ctx) -> None:
    _count(item, ctx)


# Subprocess workers (`corral worker`), steered by files.

def hang(item, ctx) -> None:
    """Announces it started (CORRAL_TEST_STARTED file), then never finishes."""
    Path(os.environ["CORRAL_TEST_STARTED"]).write_text(item["id"])
    while True:
        time.sleep(1)


def mark(item, ctx) -> None:
    ctx.set_system({"by": "second", "pid": os.getpid()})

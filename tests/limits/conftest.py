"""Services started with small limits (README "Limits"), as child processes on loopback: the
settings travel through the environment exactly as in production."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from blobstore.open_files import stored_and_open_files
from upload.conftest import Stack

from services.blobstore import open_blob_store
from services.blobstore.fs import FsBlobStore
from services.common.settings import BlobStoreSettings

T = TypeVar("T")
LimitedStack = Callable[..., Stack]


@pytest.fixture
def limited_stack(service_factory, tmp_path: Path) -> Iterator[LimitedStack]:
    """start(env={...}, catalog_env={...}, upload_env={...}) -> a catalog + upload Stack on
    an fs blob store; `env` goes to both services."""
    stacks: list[Stack] = []

    def start(env: dict[str, str] | None = None, catalog_env: dict[str, str] | None = None,
              upload_env: dict[str, str] | None = None) -> Stack:
        data_dir = tmp_path / f"data{len(stacks)}"
        data_dir.mkdir(parents=True)
        shared = {"CORRAL_DATA_DIR": str(data_dir), "CORRAL_GRACE_SECONDS": "1", **(env or {})}
        catalog = service_factory("catalog", env={
            **shared, "CORRAL_DATABASE_URL": f"sqlite:///{data_dir / 'catalog.db'}",
            **(catalog_env or {})})
        upload = service_factory("upload", env={
            **shared, "CORRAL_CATALOG_ADDR": catalog.addr, **(upload_env or {})})
        stack = Stack(upload=upload, catalog=catalog,
                      store=open_blob_store(BlobStoreSettings(), data_dir))
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.close()


def stored_files(stack: Stack) -> list[str]:
    """Every file in the stack's fs blob store: blobs, temp files (those the upload service is
    writing too) and resumable sessions."""
    store = stack.store
    assert isinstance(store, FsBlobStore)
    return stored_and_open_files(store, stack.upload.proc.pid)


def held_open(messages: Iterable[T], release: threading.Event) -> Iterator[T]:
    """Sends `messages`, then keeps the stream open without sending until `release` is set:
    an answer that arrives meanwhile came before the client finished sending."""
    yield from messages
    release.wait(120)

"""Upload settings come from flags, then CORRAL_* variables, then defaults."""

from __future__ import annotations

import pytest

from services.common.config import load
from services.upload.config import UploadConfig


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CORRAL_UPLOAD_ADDR", "CORRAL_CATALOG_ADDR", "CORRAL_BLOB_STORE"):
        monkeypatch.delenv(name, raising=False)
    config = load(UploadConfig, [])
    assert (config.addr, config.catalog_addr) == ("127.0.0.1:50052", "127.0.0.1:50051")
    assert config.download_chunk_bytes == 1024 * 1024
    assert config.blob_store == "fs"


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_UPLOAD_ADDR", "0.0.0.0:6000")
    monkeypatch.setenv("CORRAL_CATALOG_ADDR", "catalog:50051")
    monkeypatch.setenv("CORRAL_UPLOAD_DOWNLOAD_CHUNK_BYTES", "65536")
    monkeypatch.setenv("CORRAL_UPLOAD_CATALOG_TIMEOUT_SECONDS", "2.5")
    config = load(UploadConfig, ["--catalog-addr", "other:1"])
    assert config.addr == "0.0.0.0:6000"
    assert config.catalog_addr == "other:1"
    assert config.download_chunk_bytes == 65536
    assert config.catalog_timeout_seconds == 2.5

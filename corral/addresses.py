"""Service addresses: the same variables tell `corral up` where to bind and clients where to
connect."""

from __future__ import annotations

import os

CATALOG_ADDR_ENV = "CORRAL_CATALOG_ADDR"
UPLOAD_ADDR_ENV = "CORRAL_UPLOAD_ADDR"
PREPROCESS_ADDR_ENV = "CORRAL_PREPROCESS_ADDR"

DEFAULT_CATALOG_ADDR = "127.0.0.1:50051"
DEFAULT_UPLOAD_ADDR = "127.0.0.1:50052"
DEFAULT_PREPROCESS_ADDR = "127.0.0.1:50053"


def catalog_addr() -> str:
    return os.environ.get(CATALOG_ADDR_ENV) or DEFAULT_CATALOG_ADDR


def upload_addr() -> str:
    return os.environ.get(UPLOAD_ADDR_ENV) or DEFAULT_UPLOAD_ADDR


def preprocess_addr() -> str:
    return os.environ.get(PREPROCESS_ADDR_ENV) or DEFAULT_PREPROCESS_ADDR

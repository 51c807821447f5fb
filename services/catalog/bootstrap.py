"""The first admin key, so that a fresh corral is usable with one command.

With CORRAL_BOOTSTRAP_ADMIN_KEY set, that key is registered as an instance admin (once; a
revoked one is never brought back). Otherwise, when the catalog has no key at all, it makes
one and writes it to <data dir>/keys/admin.key with mode 0600, where the CLI on the same
machine finds it. The key itself is never logged."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from corral.credentials import (
    ADMIN_KEY_FILE,
    KEYS_DIR,
    new_api_key,
    read_secret_file,
    write_secret_file,
)
from services.catalog.access import Access

log = logging.getLogger("corral.catalog")


def bootstrap_admin_key(access: Access, data_dir: Path, configured_key: str = "") -> None:
    if configured_key:
        if access.ensure_key(configured_key, description="CORRAL_BOOTSTRAP_ADMIN_KEY"):
            log.info("bootstrap admin key registered")
        return
    if access.has_keys():
        return
    path = data_dir / KEYS_DIR / ADMIN_KEY_FILE
    if not path.exists():
        # Another replica on this data directory may have been first.
        with contextlib.suppress(FileExistsError):
            write_secret_file(path, new_api_key()[1])
    if access.ensure_key(read_secret_file(path), description="created on first start"):
        log.info("admin key created", extra={"path": str(path)})

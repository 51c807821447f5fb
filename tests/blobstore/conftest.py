from collections.abc import Iterator
from pathlib import Path

import pytest

from blobstore.moto_s3 import moto_endpoint, s3_settings  # noqa: F401  (a fixture)
from services.blobstore import BlobStore, open_blob_store
from services.blobstore.fs import FsBlobStore
from services.common.settings import BlobStoreSettings


@pytest.fixture(params=["fs", "fs-named-temp", "s3"])
def store(request, tmp_path: Path) -> Iterator[BlobStore]:
    """Each test using this runs on the filesystem store (with unnamed temporary files, and
    with the named ones it falls back to where a filesystem has none) and on S3 (moto on
    loopback)."""
    if request.param.startswith("fs"):
        fs_store = open_blob_store(BlobStoreSettings(), tmp_path)
        assert isinstance(fs_store, FsBlobStore)
        fs_store.unnamed_files = request.param == "fs"
        yield fs_store
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        yield open_blob_store(s3_settings(endpoint), tmp_path)

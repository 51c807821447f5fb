from collections.abc import Iterator
from pathlib import Path

import pytest

from blobstore.moto_s3 import moto_endpoint, s3_settings  # noqa: F401  (a fixture)
from services.blobstore import BlobStore, open_blob_store
from services.common.settings import BlobStoreSettings


@pytest.fixture(params=["fs", "s3"])
def store(request, tmp_path: Path) -> Iterator[BlobStore]:
    """Each test using this runs on the filesystem store and on S3 (moto on loopback)."""
    if request.param == "fs":
        yield open_blob_store(BlobStoreSettings(), tmp_path)
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        yield open_blob_store(s3_settings(endpoint), tmp_path)

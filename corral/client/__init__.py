"""The corral Python SDK.

    from corral.client import Client

    with Client() as client:
        client.create_dataset("pets")
        summary = client.upload_paths(["photos/"], "pets", remote_dir="/raw")
        print(summary)                      # created 12, skipped 0, overwritten 0, failed 0
        for item in client.list_items("pets", "/raw", recursive=True):
            print(item["filename"], item["size"])
        client.update_matching_items("pets", "name~*.jpg", metadata_patch={"kind": "photo"})
        for item in client.list_items("pets", filter=field("size") > 100_000,
                                      order_by="-size"):
            print(item["filename"])
"""

from corral.client.client import Client, is_id, preprocess_status
from corral.client.convert import DatasetDict, EventDict, ItemDict
from corral.client.events import Subscription
from corral.client.filters import Filter, field
from corral.client.results import (
    DownloadResult,
    UploadEvent,
    UploadFailure,
    UploadResult,
    UploadSummary,
)
from corral.client.resumable import ResumePolicy
from corral.client.uploads import PlannedFile, plan_uploads

__all__ = [
    "Client", "DatasetDict", "DownloadResult", "EventDict", "Filter", "ItemDict", "PlannedFile",
    "ResumePolicy", "Subscription", "UploadEvent", "UploadFailure", "UploadResult",
    "UploadSummary", "field", "is_id", "plan_uploads", "preprocess_status",
]

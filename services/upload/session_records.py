"""The durable record of one resumable upload session (a small JSON document in the blob
store's session storage, so any replica sharing the store can resume the session).

Phases: "open" (receiving bytes) -> "committing" (content verified; the blob is being made
visible at its key and registered) -> "finished" (the item exists; kept until expiry so a
retried finish or query returns the item).

A session belongs to the project of its dataset: callers of other projects are told it does
not exist.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from corral.errors import InvalidArgument
from corral.upload.v1 import upload_service_pb2 as upload_pb2

OPEN, COMMITTING, FINISHED = "open", "committing", "finished"
# Records written before projects existed: everything was in the default project then.
LEGACY_PROJECT = "default"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def check_upload_id(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise InvalidArgument(f"upload_id is not a valid id: {upload_id[:64]!r}")
    return upload_id


def upload_id_for_request(dataset_id: str, request_id: str) -> str:
    """A retried start with the same request_id finds the same session."""
    return hashlib.sha256(f"{dataset_id}\0{request_id}".encode()).hexdigest()[:32]


def spec_bytes(spec: upload_pb2.UploadSpec) -> bytes:
    return spec.SerializeToString(deterministic=True)


@dataclass
class SessionRecord:
    upload_id: str
    spec: bytes
    blob_key: str
    created: float
    expires: float
    data_state: dict[str, Any] = field(default_factory=dict)
    phase: str = OPEN
    # From "committing" on: the verified size, and the sha256 ("" until known).
    size: int = 0
    sha256: str = ""
    # When "finished".
    item_id: str = ""
    outcome: int = 0
    # The project owning the session's dataset.
    project: str = LEGACY_PROJECT

    def spec_message(self) -> upload_pb2.UploadSpec:
        return upload_pb2.UploadSpec.FromString(self.spec)

    def expired(self, now: float) -> bool:
        return now >= self.expires

    def to_json(self) -> bytes:
        fields = asdict(self)
        fields["spec"] = base64.b64encode(self.spec).decode()
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SessionRecord:
        fields = json.loads(raw)
        fields["spec"] = base64.b64decode(fields["spec"])
        return cls(**fields)

"""Validation of the UploadSpec sent in an upload's first message: everything the catalog
would refuse that can be known before a byte is stored (names, path length, metadata size and
depth, a declared size above the upload limit) is refused here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import struct_pb2

from corral.catalog.v1 import resources_pb2
from corral.errors import InvalidArgument, ResourceExhausted
from corral.paths import check_name, check_path_length, join, normalize_dir
from corral.structs import struct_to_dict
from corral.upload.v1 import upload_service_pb2
from services.common.metadata_limits import checked_json_text

# S3's largest object: any store corral supports can hold it.
DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 ** 4
MAX_UPLOAD_BYTES_ENV = "CORRAL_UPLOAD_MAX_BYTES"

_DATASET_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

DuplicatePolicy = resources_pb2.DuplicatePolicy


@dataclass(frozen=True)
class ValidSpec:
    dataset_id: str
    remote_dir: str
    name: str
    description: str
    user_metadata: struct_pb2.Struct
    declared_size: int | None
    declared_sha256: str
    duplicate_policy: int
    request_id: str

    @property
    def filename(self) -> str:
        return join(self.remote_dir, self.name)


class UploadTooLarge(ResourceExhausted):
    """An upload declared or sent more than CORRAL_UPLOAD_MAX_BYTES."""


def too_large(what: str, max_bytes: int) -> UploadTooLarge:
    """`what` says what is too large, e.g. "spec.size declares 7 bytes"."""
    return UploadTooLarge(f"{what}; the limit is {max_bytes} bytes per upload "
                             f"({MAX_UPLOAD_BYTES_ENV})")


def validate_spec(spec: upload_service_pb2.UploadSpec,
                  max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> ValidSpec:
    """The spec with its name and folder normalized, or InvalidArgument naming the field
    (RESOURCE_EXHAUSTED for a declared size above `max_bytes`)."""
    if not spec.dataset_id:
        raise InvalidArgument("spec.dataset_id is required")
    if not _DATASET_ID.fullmatch(spec.dataset_id):
        raise InvalidArgument(f"spec.dataset_id is not a valid id: {spec.dataset_id!r}")
    name = check_name(spec.name, "spec.name")
    remote_dir = normalize_dir(spec.remote_dir or "/", "spec.remote_dir")
    check_path_length(join(remote_dir, name), "the full path spec.remote_dir/spec.name")
    if spec.user_metadata.fields:
        checked_json_text(struct_to_dict(spec.user_metadata, "spec.user_metadata"),
                          "spec.user_metadata")
    declared_size = spec.size if spec.HasField("size") else None
    if declared_size is not None and declared_size < 0:
        raise InvalidArgument(f"spec.size must not be negative, got {declared_size}")
    if declared_size is not None and declared_size > max_bytes:
        raise too_large(f"spec.size declares {declared_size} bytes", max_bytes)
    declared_sha256 = spec.sha256.lower()
    if declared_sha256 and not _SHA256.fullmatch(declared_sha256):
        raise InvalidArgument("spec.sha256 must be 64 hexadecimal characters")
    if spec.duplicate_policy not in DuplicatePolicy.values():
        raise InvalidArgument(f"spec.duplicate_policy {spec.duplicate_policy} is unknown")
    policy = spec.duplicate_policy or DuplicatePolicy.DUPLICATE_POLICY_SKIP
    return ValidSpec(
        dataset_id=spec.dataset_id, remote_dir=remote_dir, name=name,
        description=spec.description, user_metadata=spec.user_metadata,
        declared_size=declared_size, declared_sha256=declared_sha256,
        duplicate_policy=policy, request_id=spec.request_id)

"""Settings of the limits every service enforces (README "Limits"): server-wide ones (message
size, concurrent calls, idle streams), applied by services.common.server, and validation ones
(names, paths, metadata), which the domain checks read process-wide once `apply_limits` has set
them at start."""

from __future__ import annotations

from dataclasses import dataclass

from corral.paths import MAX_NAME_LENGTH, MAX_PATH_LENGTH, PathLimits, set_path_limits
from services.common.config import setting
from services.common.metadata_limits import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MetadataLimits,
    set_metadata_limits,
)

MIB = 1024 * 1024
MAX_MESSAGE_BYTES_ENV = "CORRAL_MAX_MESSAGE_BYTES"
MAX_CONCURRENT_RPCS_ENV = "CORRAL_MAX_CONCURRENT_RPCS"
STREAM_IDLE_ENV = "CORRAL_STREAM_IDLE_SECONDS"


@dataclass(frozen=True)
class ServerLimits:
    """What services.common.server enforces on every call of one server."""

    # Chunks are up to a few MiB; leave headroom over gRPC's 4 MiB default.
    max_message_bytes: int = 16 * MIB
    max_concurrent_rpcs: int = 1000
    stream_idle_seconds: float = 60.0  # 0: no limit

    def __post_init__(self) -> None:
        if self.max_message_bytes < 64 * 1024:
            raise ValueError(f"{MAX_MESSAGE_BYTES_ENV} must be at least 65536, got "
                             f"{self.max_message_bytes}")
        if self.max_concurrent_rpcs < 1:
            raise ValueError(f"{MAX_CONCURRENT_RPCS_ENV} must be at least 1, got "
                             f"{self.max_concurrent_rpcs}")
        if self.stream_idle_seconds < 0:
            raise ValueError(f"{STREAM_IDLE_ENV} must not be negative, got "
                             f"{self.stream_idle_seconds}")


@dataclass
class ServerLimitSettings:
    max_message_bytes: int = setting(
        MAX_MESSAGE_BYTES_ENV, ServerLimits.max_message_bytes,
        "Largest gRPC message the service receives or sends; a larger one fails with "
        "RESOURCE_EXHAUSTED")
    max_concurrent_rpcs: int = setting(
        MAX_CONCURRENT_RPCS_ENV, ServerLimits.max_concurrent_rpcs,
        "Most calls the service runs at once (streams included, health checks exempt); more "
        "are refused with RESOURCE_EXHAUSTED")
    stream_idle_seconds: float = setting(
        STREAM_IDLE_ENV, ServerLimits.stream_idle_seconds,
        "A client or bidirectional stream that sends no message for this long ends with "
        "DEADLINE_EXCEEDED (0: never)")

    def server_limits(self) -> ServerLimits:
        return ServerLimits(max_message_bytes=self.max_message_bytes,
                            max_concurrent_rpcs=self.max_concurrent_rpcs,
                            stream_idle_seconds=self.stream_idle_seconds)


@dataclass
class PathLimitSettings:
    max_name_length: int = setting(
        "CORRAL_MAX_NAME_LENGTH", MAX_NAME_LENGTH,
        "Longest item or folder name, in characters (dataset names: at most 128)")
    max_path_length: int = setting(
        "CORRAL_MAX_PATH_LENGTH", MAX_PATH_LENGTH,
        "Longest full path of an item (folders and name), in UTF-8 bytes; at most 1280")

    def path_limits(self) -> PathLimits:
        return PathLimits(self.max_name_length, self.max_path_length)


@dataclass
class MetadataLimitSettings:
    max_metadata_bytes: int = setting(
        "CORRAL_CATALOG_MAX_METADATA_BYTES", MAX_METADATA_BYTES,
        "Largest metadata object (metadata.user, a trigger's metadata.system) as JSON, in bytes")
    max_metadata_depth: int = setting(
        "CORRAL_CATALOG_MAX_METADATA_DEPTH", MAX_METADATA_DEPTH,
        "Deepest nesting of objects and arrays in metadata; at most 32 (protobuf's limit)")

    def metadata_limits(self) -> MetadataLimits:
        return MetadataLimits(self.max_metadata_bytes, self.max_metadata_depth)


def apply_limits(config: ServerLimitSettings) -> ServerLimits:
    """Checks every limit setting of a loaded config, makes this process's name, path and
    metadata checks use the ones it has, and returns the server's limits. A value out of range
    stops the service with a message naming the setting."""
    try:
        if isinstance(config, PathLimitSettings):
            set_path_limits(config.path_limits())
        if isinstance(config, MetadataLimitSettings):
            set_metadata_limits(config.metadata_limits())
        return config.server_limits()
    except ValueError as exc:
        raise SystemExit(f"invalid setting: {exc}") from None

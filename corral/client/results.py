"""What uploads and downloads return: plain dataclasses holding plain dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from corral.client.convert import ItemDict
from corral.errors import CorralError

Outcome = Literal["created", "skipped", "overwritten"]


@dataclass(frozen=True)
class UploadResult:
    """One uploaded file: the catalogued item and what the upload did."""

    item: ItemDict
    outcome: Outcome
    local_path: str | None = None
    # The offsets a resumable upload continued from after a failed stream (none: no failure).
    resumed_from: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"local_path": self.local_path, "outcome": self.outcome, "item": self.item}


@dataclass(frozen=True)
class UploadFailure:
    """One file that could not be uploaded, and why."""

    local_path: str
    filename: str
    error: BaseException

    @property
    def code(self) -> str:
        return self.error.code if isinstance(self.error, CorralError) else "LOCAL"

    @property
    def reason(self) -> str:
        if isinstance(self.error, CorralError):
            return f"{self.error.code}: {self.error.message}"
        return str(self.error) or type(self.error).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"local_path": self.local_path, "filename": self.filename,
                "code": self.code, "reason": self.reason}


@dataclass
class UploadSummary:
    """The result of uploading many files: every file is either a result or a failure."""

    results: list[UploadResult] = field(default_factory=list)
    failures: list[UploadFailure] = field(default_factory=list)

    def _with(self, outcome: Outcome) -> list[UploadResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def created(self) -> list[UploadResult]:
        return self._with("created")

    @property
    def skipped(self) -> list[UploadResult]:
        return self._with("skipped")

    @property
    def overwritten(self) -> list[UploadResult]:
        return self._with("overwritten")

    @property
    def ok(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        return {"created": len(self.created), "skipped": len(self.skipped),
                "overwritten": len(self.overwritten), "failed": len(self.failures)}

    def __str__(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in self.counts().items())

    def to_dict(self) -> dict[str, Any]:
        return {**self.counts(),
                "results": [r.to_dict() for r in self.results],
                "failures": [f.to_dict() for f in self.failures]}


@dataclass(frozen=True)
class UploadEvent:
    """Progress of `Client.upload_paths`, passed to its `progress` callback.

    kind "planned": once, with total_files and total_bytes.
    kind "bytes": `bytes` more were sent for `path` (negative when a retry starts over).
    kind "finished": `path` is done, with `result` or `failure`; `unsent_bytes` is what was
    never reported as sent (skipped content, failures), so a byte counter can still end at
    total_bytes.
    """

    kind: Literal["planned", "bytes", "finished"]
    path: str = ""
    bytes: int = 0
    total_files: int = 0
    total_bytes: int = 0
    result: UploadResult | None = None
    failure: UploadFailure | None = None
    unsent_bytes: int = 0


@dataclass(frozen=True)
class DownloadResult:
    """A finished download: where it went (None for a file object), its size, media type
    and the SHA-256 of the bytes received."""

    path: str | None
    size: int
    content_type: str
    sha256: str

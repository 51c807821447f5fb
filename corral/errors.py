"""Errors that carry their gRPC status code by name, so domain code never imports grpc.

Servers turn them into aborts in one interceptor; the SDK turns aborts back into them.
"""

from __future__ import annotations


class CorralError(Exception):
    """Base class. `code` is the gRPC status code name the client should act on."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CorralError):
    code = "INVALID_ARGUMENT"


class NotFound(CorralError):
    code = "NOT_FOUND"


class AlreadyExists(CorralError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(CorralError):
    code = "FAILED_PRECONDITION"


class Aborted(CorralError):
    code = "ABORTED"


class OutOfRange(CorralError):
    code = "OUT_OF_RANGE"


class Unavailable(CorralError):
    code = "UNAVAILABLE"


class DataLoss(CorralError):
    code = "DATA_LOSS"


class ResourceExhausted(CorralError):
    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(CorralError):
    code = "PERMISSION_DENIED"


class Unauthenticated(CorralError):
    code = "UNAUTHENTICATED"


class DeadlineExceeded(CorralError):
    code = "DEADLINE_EXCEEDED"


class Internal(CorralError):
    code = "INTERNAL"


ERRORS_BY_CODE: dict[str, type[CorralError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Aborted, OutOfRange,
        Unavailable, DataLoss, ResourceExhausted, PermissionDenied, Unauthenticated,
        DeadlineExceeded, Internal,
    )
}


def error_for_code(code_name: str, message: str) -> CorralError:
    """The CorralError subclass for a status code name (INTERNAL for unknown ones)."""
    return ERRORS_BY_CODE.get(code_name, CorralError)(message)

"""A live subscription to the catalog's item events."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from corral.client.convert import EventDict, event_to_dict
from corral.rpc import translate


class Subscription:
    """Iterates item events as dicts until cancelled. cancel() may be called from any
    thread; the iteration then ends quietly instead of raising CANCELLED."""

    def __init__(self, call: grpc.Call) -> None:
        self._call = call
        self._cancelled = False

    def __iter__(self) -> Iterator[EventDict]:
        return self

    def __next__(self) -> EventDict:
        try:
            response = next(self._call)  # type: ignore[call-overload]
        except grpc.RpcError as exc:
            if self._cancelled and exc.code() == grpc.StatusCode.CANCELLED:
                raise StopIteration from None
            raise translate(exc) from exc
        return event_to_dict(response.event)

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

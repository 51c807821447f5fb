"""A cap on what one API key holds open at once (e.g. the catalog's Subscribe streams).

CORRAL_MAX_CONCURRENT_RPCS protects a service from everyone together; this protects the others
from one key: long-lived calls cost the service work while idle (an idle subscription polls
the event table), so one key holding hundreds of them could take the service for itself.
No gRPC here: the refusal is a domain error (RESOURCE_EXHAUSTED) and the servicer holds a
slot for as long as its call runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from corral.errors import ResourceExhausted
from services.common.caller import Principal


class PerKeyLimit:
    """At most `limit` slots per key_id (0: no cap). The corral services' own key is exempt:
    it stands for the whole installation (the preprocess pool, trigger bookkeeping), not for
    one client."""

    def __init__(self, limit: int, what: str, setting: str) -> None:
        if limit < 0:
            raise ValueError(f"{setting} must not be negative, got {limit}")
        self.limit, self._what, self._setting = limit, what, setting
        self._held: dict[str, int] = {}
        # Slots are taken on the event loop today; the lock keeps the count right from
        # threads too, for the cost of an uncontended acquire.
        self._lock = threading.Lock()

    def held(self, key_id: str) -> int:
        with self._lock:
            return self._held.get(key_id, 0)

    @contextlib.contextmanager
    def hold(self, principal: Principal) -> Iterator[None]:
        """A slot of the caller's key for the duration of the block, released however the
        block ends; ResourceExhausted, naming the limit and its setting, when none is free."""
        if self.limit == 0 or principal.service:
            yield
            return
        key = principal.key_id
        with self._lock:
            count = self._held.get(key, 0)
            if count >= self.limit:
                raise ResourceExhausted(
                    f"key {key} already holds {count} open {self._what}; the limit is "
                    f"{self.limit} ({self._setting}): close one first")
            self._held[key] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._held[key] - 1
                if left:
                    self._held[key] = left
                else:
                    del self._held[key]  # keys come and go: keep no entry for idle ones

"""Derived preprocess settings."""

from __future__ import annotations

from services.catalog.leases import MAX_IN_FLIGHT_LIMIT
from services.common.config import load
from services.preprocess.config import PreprocessConfig
from services.preprocess.worker import LEASE_HEADROOM


def test_events_in_flight_leave_a_queue_per_process_within_the_catalogs_limit() -> None:
    assert load(PreprocessConfig, ["--processes", "2"]).max_in_flight == 64
    many = load(PreprocessConfig, ["--processes", "64"]).max_in_flight
    assert LEASE_HEADROOM * many <= MAX_IN_FLIGHT_LIMIT

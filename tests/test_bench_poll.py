"""The small-images benchmark polls preprocess GetStats rarely while far from done and every
20 ms near the end, so the end is measured as precisely as before."""

from __future__ import annotations

from bench.small_images import POLL_MAX_SECONDS, POLL_MIN_SECONDS, poll_interval


def test_nothing_done_yet_polls_at_the_longest_interval() -> None:
    assert poll_interval(0, 5000, 1.0) == POLL_MAX_SECONDS


def test_far_from_done_polls_rarely_near_the_end_often() -> None:
    # 500 items a second: 9 s left, then 20 ms left.
    assert poll_interval(500, 5000, 1.0) == POLL_MAX_SECONDS
    assert poll_interval(4990, 5000, 9.98) == POLL_MIN_SECONDS


def test_a_quarter_of_the_time_left_in_between() -> None:
    # 100 items left at 1,000 a second: 0.1 s left, polled after 25 ms.
    assert abs(poll_interval(900, 1000, 0.9) - 0.025) < 1e-9

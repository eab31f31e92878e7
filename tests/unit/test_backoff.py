"""The one retry policy (poller feeds and sink retries)."""

from __future__ import annotations

import itertools
import random

from pipeline.backoff import backoff_delay


def test_backoff_grows_with_jitter_and_caps() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 60, 24 * 3600, rng) for n in range(1, 16)]
    # non-decreasing until the cap (60 * 2**10 < 24 h), then jittered in [cap/2, cap]
    assert all(b >= a for a, b in itertools.pairwise(delays[:11]))
    assert 30 <= delays[0] <= 60
    assert 60 <= delays[1] <= 120
    assert all(d <= 24 * 3600 for d in delays)
    assert delays[-1] >= 12 * 3600  # capped, still jittered in [cap/2, cap]
    assert len({round(backoff_delay(3, 60, 3600, rng), 3) for _ in range(20)}) > 1  # jitter
    assert backoff_delay(0, 60, 3600) == 0


def test_backoff_without_jitter_grows_and_caps() -> None:
    # The sink's retries: attempt n (0-based) waits base * 2**n, capped.
    assert backoff_delay(0 + 1, 0.5, 60.0) == 0.5
    assert backoff_delay(3 + 1, 0.5, 60.0) == 4.0
    assert backoff_delay(30 + 1, 0.5, 60.0) == 60.0

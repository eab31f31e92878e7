"""The one retry policy: exponential backoff, capped, with optional "equal jitter".

The poller backs off from failing feeds with it (jittered, so feeds that failed together
do not retry together) and the sink from a search engine that asks it to wait (plain).
"""

from __future__ import annotations

import random


def backoff_delay(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1-based).

    ``d = base * 2**(failures-1)``, capped at ``cap``; 0 before any failure. With ``rng``
    the delay is drawn in [d/2, d] ("equal jitter"): delays never shrink from one failure
    to the next (the lower bound of failure n+1 is the upper bound of failure n), and they
    keep coming, so a feed is never dropped.
    """
    if failures <= 0:
        return 0.0
    ceiling = float(min(cap, base * (2.0 ** min(failures - 1, 62))))
    if rng is None:
        return ceiling
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


__all__ = ["backoff_delay"]

"""Scheduling policy of the poller, pure: when to poll a feed next.

Intervals adapt to how often a feed changes within [min, max]; the server's hints
(``Cache-Control: max-age``, RSS ``ttl``, ``sy:updatePeriod``) are floors; a failing feed
backs off (:func:`pipeline.backoff.backoff_delay`) and a ``Retry-After`` is honoured. No
I/O here: the poller passes in the clock and the headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime

from pipeline.settings import Settings
from pipeline.sources.state import FeedState

#: The longest ``Retry-After`` believed (a server asking for a month gets a week).
MAX_RETRY_AFTER = 7 * 86400.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


def parse_max_age(cache_control: str | None) -> float | None:
    """``max-age`` (or ``s-maxage``) seconds from a ``Cache-Control`` header."""
    if not cache_control:
        return None
    best: float | None = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() in ("max-age", "s-maxage"):
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                continue
            if seconds > 0:
                best = max(best or 0.0, seconds)
    return best


def conditional_headers(state: FeedState | None) -> dict[str, str]:
    """``If-None-Match`` / ``If-Modified-Since`` echoing the stored validators verbatim."""
    headers: dict[str, str] = {}
    if state is None:
        return headers
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def next_interval(
    current: float,
    *,
    changed: bool,
    config: Settings,
    fixed: float | None = None,
    hints: Iterable[float | None] = (),
) -> float:
    """The next polling interval after a successful poll.

    A fixed per-feed interval wins; otherwise the interval halves when the feed changed
    and grows by half when it did not, within [min, max]. Hints (Cache-Control max-age,
    RSS ttl, sy:updatePeriod) are floors, themselves capped at the maximum.
    """
    if fixed is not None:
        interval = fixed
    else:
        interval = current * (0.5 if changed else 1.5)
        interval = min(config.poll_max_interval, max(config.poll_min_interval, interval))
    floors = [h for h in hints if h]
    if floors:
        interval = max(interval, min(max(floors), config.poll_max_interval))
    return interval


__all__ = [
    "MAX_RETRY_AFTER",
    "conditional_headers",
    "next_interval",
    "parse_max_age",
    "parse_retry_after",
]

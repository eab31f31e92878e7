"""Feed health, pure: how long to wait after a failure, and when to give up on a feed.

A failing feed backs off (:func:`pipeline.backoff.backoff_delay`, up to the cap) and is
then ``disabled`` with the reason: at once on 410 Gone; after ``poll_disable_404``
consecutive 404s; after ``poll_disable_dns_days`` of DNS failures; after
``poll_disable_days`` of any failure. A disabled feed is still probed every
``poll_probe_interval`` seconds; the first success enables it again (the poller clears
``disabled``), so a feed that comes back is picked up without anyone acting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.backoff import backoff_delay
from pipeline.settings import Settings
from pipeline.sources.state import FeedState

DAY = 86400.0
#: What DNS failures look like in aiohttp/getaddrinfo messages.
_DNS_MARKERS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "cannot connect to host",  # only with one of the above in the cause; see is_dns_failure
    "dns",
)


def is_dns_failure(message: str) -> bool:
    """Whether an error message says the host name did not resolve."""
    text = message.lower()
    return any(marker in text for marker in _DNS_MARKERS[:4]) or "dns" in text.split(":")[0]


@dataclass(frozen=True, slots=True)
class Verdict:
    """After a failure: when to try again, and why the feed is disabled (if it is)."""

    delay: float
    disabled: str | None


def after_failure(
    state: FeedState,
    *,
    status: int | None,
    message: str,
    now: float,
    settings: Settings,
    rng: random.Random,
    retry_after: float | None = None,
) -> Verdict:
    """The verdict for a feed whose ``consecutive_failures`` and ``failing_since`` were
    already updated for this failure; ``state.last_status`` is still the previous one."""
    failing_for = now - (state.failing_since or now)
    reason: str | None = None
    if status == 410:
        reason = "gone (HTTP 410)"
    elif status == 404 and state.consecutive_failures >= settings.poll_disable_404:
        reason = f"not found (HTTP 404) {state.consecutive_failures} times in a row"
    elif is_dns_failure(message) and failing_for >= settings.poll_disable_dns_days * DAY:
        reason = f"host does not resolve for {failing_for / DAY:.0f} days"
    elif failing_for >= settings.poll_disable_days * DAY:
        reason = f"failing for {failing_for / DAY:.0f} days: {message[:120]}"
    if reason is not None or state.disabled is not None:
        return Verdict(settings.poll_probe_interval, reason or state.disabled)
    delay = backoff_delay(
        state.consecutive_failures, settings.poll_backoff_base, settings.poll_backoff_cap, rng
    )
    if retry_after is not None:
        delay = max(delay, retry_after)
    return Verdict(delay, None)


def per_day(previous: float, new_items: int, elapsed: float | None) -> float:
    """Moving average of new items per day: each poll weighs by the time it covers
    (a week's worth replaces the average), so it adapts to the feed's pace."""
    if not elapsed or elapsed <= 0:
        return previous
    weight = min(1.0, elapsed / (7 * DAY))
    return (1 - weight) * previous + weight * (new_items * DAY / elapsed)


__all__ = ["Verdict", "after_failure", "is_dns_failure", "per_day"]

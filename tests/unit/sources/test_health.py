"""Feed health policy: backoff, then disabled with a reason; probes; items per day."""

from __future__ import annotations

import random

import pytest

from pipeline.settings import Settings
from pipeline.sources.health import DAY, after_failure, is_dns_failure, per_day
from pipeline.sources.state import FeedState

SETTINGS = Settings(poll_backoff_base=60, poll_backoff_cap=86400, poller_metrics_port=0)
NOW = 1_800_000_000.0


def failing(failures: int, since_days: float = 0.0, disabled: str | None = None) -> FeedState:
    return FeedState(
        key="k",
        url="u",
        consecutive_failures=failures,
        failing_since=NOW - since_days * DAY,
        disabled=disabled,
    )


def test_410_disables_at_once_and_probes_daily() -> None:
    v = after_failure(
        failing(1), status=410, message="HTTP 410 Gone", now=NOW, settings=SETTINGS,
        rng=random.Random(1),
    )  # fmt: skip
    assert v.disabled == "gone (HTTP 410)" and v.delay == SETTINGS.poll_probe_interval


def test_404_disables_after_repeats_only() -> None:
    first = after_failure(
        failing(1), status=404, message="HTTP 404", now=NOW, settings=SETTINGS,
        rng=random.Random(1),
    )  # fmt: skip
    assert first.disabled is None and first.delay < 200
    fifth = after_failure(
        failing(5), status=404, message="HTTP 404", now=NOW, settings=SETTINGS,
        rng=random.Random(1),
    )  # fmt: skip
    assert fifth.disabled is not None and "404" in fifth.disabled


def test_dns_failure_for_days_disables() -> None:
    dns = "connection failed: [Errno -2] Name or service not known"
    assert is_dns_failure(dns) and not is_dns_failure("HTTP 500 Internal Server Error")
    young = after_failure(
        failing(9, since_days=1), status=None, message=dns, now=NOW, settings=SETTINGS,
        rng=random.Random(1),
    )  # fmt: skip
    assert young.disabled is None
    old = after_failure(
        failing(30, since_days=3.5), status=None, message=dns, now=NOW, settings=SETTINGS,
        rng=random.Random(1),
    )  # fmt: skip
    assert old.disabled == "host does not resolve for 4 days"


@pytest.mark.parametrize("failures", [1, 3, 8, 20])
def test_other_failures_back_off_growing_then_give_up_after_weeks(failures: int) -> None:
    v = after_failure(
        failing(failures, since_days=1), status=500, message="HTTP 500", now=NOW,
        settings=SETTINGS, rng=random.Random(1),
    )  # fmt: skip
    assert v.disabled is None and 30 <= v.delay <= SETTINGS.poll_backoff_cap
    weeks = after_failure(
        failing(failures, since_days=15), status=500, message="HTTP 500", now=NOW,
        settings=SETTINGS, rng=random.Random(1),
    )  # fmt: skip
    assert weeks.disabled is not None and weeks.disabled.startswith("failing for 15 days")


def test_retry_after_is_a_floor() -> None:
    v = after_failure(
        failing(1), status=429, message="HTTP 429", now=NOW, settings=SETTINGS,
        rng=random.Random(1), retry_after=7200.0,
    )  # fmt: skip
    assert v.delay >= 7200.0


def test_a_disabled_feed_stays_disabled_and_is_probed() -> None:
    v = after_failure(
        failing(40, since_days=2, disabled="gone (HTTP 410)"), status=500, message="HTTP 500",
        now=NOW, settings=SETTINGS, rng=random.Random(1),
    )  # fmt: skip
    assert v.disabled == "gone (HTTP 410)" and v.delay == SETTINGS.poll_probe_interval


def test_items_per_day() -> None:
    assert per_day(0.0, 10, 7 * DAY) == pytest.approx(10 / 7)
    assert per_day(5.0, 0, None) == 5.0
    assert 0 < per_day(0.0, 1, 3600.0) < 24

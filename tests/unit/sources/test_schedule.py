"""The poller's scheduling policy: Retry-After, max-age, validators, adaptive intervals."""

from __future__ import annotations

from pipeline.settings import Settings
from pipeline.sources.schedule import (
    conditional_headers,
    next_interval,
    parse_max_age,
    parse_retry_after,
)
from pipeline.sources.state import FeedState

CONFIG = Settings(poll_min_interval=60, poll_max_interval=3600)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", now=0) == 120
    assert parse_retry_after("Thu, 01 Jan 1970 01:00:00 GMT", now=1800) == 1800
    assert parse_retry_after("garbage", now=0) is None
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("99999999", now=0) == 7 * 86400


def test_parse_max_age() -> None:
    assert parse_max_age("public, max-age=600") == 600
    assert parse_max_age("max-age=60, s-maxage=300") == 300
    assert parse_max_age("no-cache") is None
    assert parse_max_age("max-age=abc") is None


def test_conditional_headers_echo_validators() -> None:
    state = FeedState(
        key="k", url="u", etag='W/"abc"', last_modified="Tue, 14 Nov 2023 22:13:20 GMT"
    )
    assert conditional_headers(state) == {
        "If-None-Match": 'W/"abc"',
        "If-Modified-Since": "Tue, 14 Nov 2023 22:13:20 GMT",
    }
    assert conditional_headers(FeedState(key="k", url="u")) == {}


def test_next_interval_adapts_within_bounds_and_honours_hints() -> None:
    assert next_interval(900, changed=True, config=CONFIG) == 450
    assert next_interval(900, changed=False, config=CONFIG) == 1350
    assert next_interval(100, changed=True, config=CONFIG) == 60  # min
    assert next_interval(3000, changed=False, config=CONFIG) == 3600  # max
    assert next_interval(100, changed=True, config=CONFIG, hints=[900, None]) == 900  # ttl floor
    assert next_interval(100, changed=True, config=CONFIG, hints=[86400]) == 3600  # floor capped
    assert next_interval(100, changed=False, config=CONFIG, fixed=300) == 300

"""Poller feed state: the version-2 record, its size bound, the version-1 reader."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.models import RawArticle
from pipeline.sources.seen import ITEM_BYTES, MAX_ITEMS, fingerprint, select, unpack
from pipeline.sources.state import FeedState, MemoryStateStore, partition_for


def test_partition_for_is_stable() -> None:
    assert partition_for("abc", 16) == partition_for("abc", 16)
    assert len({partition_for(str(i), 16) for i in range(200)}) == 16


def _articles(n: int, start: int = 0) -> list[RawArticle]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        RawArticle(
            id=f"{i:032x}",
            title=f"Title {i}",
            summary="s" * 200,
            published_at=base + timedelta(minutes=i),
        )
        for i in range(start, start + n)
    ]


def _full_state(shown: int = 64) -> FeedState:
    """A feed at its worst: long URL, validators and error, a full item memory (of a
    document of ``shown`` items)."""
    chosen = select(_articles(shown), b"", None, cap=64)
    return FeedState(
        key="f" * 32,
        url="https://news.example.org/" + "section/" * 12 + "rss.xml",
        fetch_url="https://cdn.example.org/" + "x" * 120,
        etag='W/"' + "e" * 60 + '"',
        last_modified="Wed, 02 Dec 2026 10:00:00 GMT",
        body_hash="0123456789abcdef",
        interval=3600.0,
        next_poll_at=1.8e9,
        last_poll_at=1.8e9,
        last_change_at=1.8e9,
        last_status=503,
        last_outcome="error",
        last_error="HTTP 503 " + "x" * 600,
        consecutive_failures=7,
        failing_since=1.7e9,
        new_items=100,
        total_items=123456789,
        revisions=4567,
        items_per_day=144.5,
        seen=chosen.seen,
        floor=chosen.floor,
    )


def test_record_at_the_cap_stays_under_2_kb() -> None:
    state = _full_state()
    assert len(unpack(state.seen)) == 64
    record = state.to_json()
    assert len(record) <= 2048, len(record)
    assert json.loads(record)["v"] == 2
    again = FeedState.from_json(record)
    assert again.seen == state.seen and again.floor == state.floor
    assert again.last_error == state.last_error[:160]  # type: ignore[index]


def test_memory_at_the_cap_stays_under_2_kb() -> None:
    state = FeedState.from_json(_full_state().to_json())
    size = sys.getsizeof(state) + sum(
        sys.getsizeof(getattr(state, name))
        for name in ("key", "url", "fetch_url", "etag", "last_modified", "body_hash",
                     "last_outcome", "last_error", "seen")
    )  # fmt: skip
    assert size <= 2048, size


def test_round_trip_and_defaults_left_out() -> None:
    state = FeedState(key="k", url="u")
    assert json.loads(state.to_json()) == {"v": 2, "key": "k", "url": "u"}
    assert FeedState.from_json(state.to_json()) == state


def test_version_1_record_is_read() -> None:
    """A record from before (a list of seen ids): ids become fingerprints whose content
    is not known yet, so nothing is published again after the upgrade."""
    ids = [a.id for a in _articles(3)]
    old = {"key": "k", "url": "u", "etag": '"e"', "seen_ids": ids, "total_items": 3}
    state = FeedState.from_json(json.dumps(old).encode())
    assert state.etag == '"e"' and state.total_items == 3
    assert list(unpack(state.seen)) == [fingerprint(i) for i in ids]
    again = select(_articles(3), state.seen, state.floor, cap=64)
    assert again.publish == [] and again.revisions == 0
    assert all(ch != 0 for ch in unpack(again.seen).values())


def test_bad_records_raise_value_error() -> None:
    for bad in (b"[]", b'{"v": 2, "key": "k", "url": "u", "seen": "***"}', b"{"):
        with pytest.raises(ValueError):
            FeedState.from_json(bad)


def test_long_feed_record_and_memory_stay_bounded() -> None:
    # A document of 500 items: the memory grows to MAX_ITEMS (100), no further; with every
    # other field at its longest the record stays near 2 KB.
    state = _full_state(500)
    assert len(unpack(state.seen)) == MAX_ITEMS
    record = state.to_json()
    assert len(record) <= 2600, len(record)
    loaded = FeedState.from_json(record)
    size = sys.getsizeof(loaded) + sum(
        sys.getsizeof(getattr(loaded, name))
        for name in ("key", "url", "fetch_url", "etag", "last_modified", "body_hash",
                     "last_outcome", "last_error", "seen")
    )  # fmt: skip
    assert size <= 2450, size


def test_schedule_only_change_needs_no_write() -> None:
    state = FeedState.from_json(_full_state().to_json())
    assert not state.needs_write()
    state.next_poll_at += 600
    state.last_poll_at = (state.last_poll_at or 0) + 600
    state.interval = 7200.0
    assert not state.needs_write()
    state.etag = '"other"'
    assert state.needs_write()
    state.mark_written()
    assert not state.needs_write()


async def test_memory_store_round_trip() -> None:
    store = MemoryStateStore(4)
    await store.save(_full_state())
    loaded = await store.load()
    assert loaded["f" * 32].seen == _full_state().seen
    assert len(loaded["f" * 32].seen) == 64 * ITEM_BYTES

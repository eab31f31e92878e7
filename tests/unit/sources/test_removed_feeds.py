"""State of feeds taken off the list is tombstoned on load (unless the list has errors)."""

from __future__ import annotations

from typing import Any

from pipeline.settings import Settings
from pipeline.sources.feeds import FeedConfig, FeedEntryError, FeedList
from pipeline.sources.poller import Poller
from pipeline.sources.state import FeedState, MemoryStateStore, removed_feeds

SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", poller_metrics_port=0)
KEPT = FeedConfig(url="https://kept.test/rss")
DISABLED = FeedConfig(url="https://disabled.test/rss", enabled=False)
GONE = FeedConfig(url="https://gone.test/rss")


async def _publish(articles: list[Any]) -> int:
    return len(articles)


def test_removed_feeds_are_the_stored_keys_not_listed() -> None:
    assert removed_feeds(["a", "b", "c"], ["b"]) == ["a", "c"]
    assert removed_feeds([], ["b"]) == []


async def _store_with_three() -> MemoryStateStore:
    store = MemoryStateStore(SETTINGS.poller_partitions)
    for feed in (KEPT, DISABLED, GONE):
        await store.save(FeedState(key=feed.key, url=feed.url))
    return store


async def test_state_of_a_removed_feed_is_forgotten_on_load() -> None:
    store = await _store_with_three()
    poller = Poller(SETTINGS, FeedList(feeds=[KEPT, DISABLED]), _publish, store)
    poller.assigned = set()  # a group member, as GroupMembership.start makes it
    try:
        await poller.load_state()
    finally:
        await poller.close()
    assert set(poller.states) == {KEPT.key, DISABLED.key}
    assert set(store.states) == {KEPT.key, DISABLED.key}


async def test_a_list_with_invalid_entries_forgets_nothing() -> None:
    store = await _store_with_three()
    broken = FeedList(feeds=[KEPT], errors=[FeedEntryError(1, "htp://gone", "not http")])
    poller = Poller(SETTINGS, broken, _publish, store)
    poller.assigned = set()
    try:
        await poller.load_state()
    finally:
        await poller.close()
    assert set(store.states) == {KEPT.key, DISABLED.key, GONE.key}


async def test_a_one_off_run_outside_the_group_forgets_nothing() -> None:
    store = await _store_with_three()
    poller = Poller(SETTINGS, FeedList(feeds=[KEPT]), _publish, store)
    try:
        await poller.load_state()  # assigned is None: not a group member
    finally:
        await poller.close()
    assert set(store.states) == {KEPT.key, DISABLED.key, GONE.key}

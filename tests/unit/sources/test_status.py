"""``feeds status`` pages: partition by partition, filtered by health, with a cursor."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.state import FeedState, MemoryStateStore, partition_for
from pipeline.sources.status import health_of, status_page


class CountingStore(MemoryStateStore):
    def __init__(self, partitions: int) -> None:
        super().__init__(partitions)
        self.loads: list[list[int]] = []

    async def load(self, partitions=None):  # type: ignore[no-untyped-def]
        self.loads.append(sorted(partitions or []))
        return await super().load(partitions)


async def _store(feeds: list[FeedConfig]) -> CountingStore:
    store = CountingStore(8)
    for n, feed in enumerate(feeds):
        state = FeedState(key=feed.key, url=feed.url, last_poll_at=1.0)
        if n % 10 == 0:
            state.disabled, state.consecutive_failures = "gone (HTTP 410)", 1
        elif n % 10 == 1:
            state.consecutive_failures = 3
        await store.save(state)
    return store


def test_health_of() -> None:
    feed = FeedConfig(url="https://a.test/rss")
    assert health_of(feed, None) == "new"
    assert health_of(feed.model_copy(update={"enabled": False}), None) == "off"
    state = FeedState(key=feed.key, url=feed.url, last_poll_at=1.0)
    assert health_of(feed, state) == "ok"
    state.consecutive_failures = 2
    assert health_of(feed, state) == "backoff"
    state.disabled = "gone"
    assert health_of(feed, state) == "disabled"


async def test_pages_cover_every_feed_once_reading_partition_by_partition() -> None:
    feeds = [FeedConfig(url=f"https://f{i}.test/rss") for i in range(200)]
    store = await _store(feeds)
    seen: list[str] = []
    cursor = None
    first = True
    while True:
        page = await status_page(feeds, store, 8, cursor=cursor, limit=30)
        if first:
            assert len(store.loads) < 8  # the first page did not read every partition
            first = False
        seen.extend(r.key for r in page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(f.key for f in feeds) and len(seen) == len(set(seen))


async def test_filter_by_health_reads_a_bounded_number_of_partitions_per_page() -> None:
    feeds = [FeedConfig(url=f"https://f{i}.test/rss") for i in range(100)]
    store = await _store(feeds)
    found: list[str] = []
    cursor = None
    pages = 0
    while pages < 10:
        before = len(store.loads)
        page = await status_page(
            feeds, store, 8, health="disabled", limit=100, cursor=cursor, scan=3
        )
        pages += 1
        assert len(store.loads) - before <= 3  # a rare filter never reads everything
        assert all(r.disabled_reason for r in page.rows)
        found.extend(r.key for r in page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3  # 8 partitions, 3 a page
    assert len(found) == 10 and len(set(found)) == 10
    with pytest.raises(ConfigError):
        await status_page(feeds, store, 8, health="sick")


async def test_a_page_of_per_partition_feeds_reads_only_its_partitions() -> None:
    feeds = [FeedConfig(url=f"https://f{i}.test/rss") for i in range(100)]
    store = await _store(feeds)
    asked: list[int] = []

    async def feeds_of(part: int) -> list[FeedConfig]:
        asked.append(part)
        return [f for f in feeds if partition_for(f.key, 8) == part]

    page = await status_page(feeds_of, store, 8, health="backoff", limit=5)
    assert len(page.rows) == 5 and {r.health for r in page.rows} == {"backoff"}
    assert asked == sorted(set(asked)) and len(asked) < 8

"""A feed taken off the list: its state is tombstoned in the real compacted state topic."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.sources.coordination import (
    AtomicKafkaStateStore,
    KafkaStateStore,
    ensure_poller_topics,
)
from pipeline.sources.feeds import FeedConfig, FeedList
from pipeline.sources.poller import Poller
from pipeline.sources.state import FeedState

pytestmark = pytest.mark.integration


async def _records(
    read_committed_records: Any, bootstrap: str, topic: str
) -> list[tuple[str, bytes | None]]:
    """Every committed (key, value) of ``topic``, tombstones included."""
    records = await read_committed_records(bootstrap, topic)
    return [(r.key.decode(), r.value) for r in records if r.key]


async def test_removed_feed_state_is_tombstoned_in_the_state_topic(
    stack: Any, isolated: Any, read_committed_records: Any
) -> None:
    settings = isolated(stack.settings, "tombstone", poller_partitions=4)
    servers = stack.kafka_bootstrap
    await ensure_poller_topics(servers, settings)
    kept = FeedConfig(url="https://kept.test/rss")
    gone = FeedConfig(url="https://gone.test/rss")
    writer = KafkaStateStore(servers, settings)
    try:
        for feed in (kept, gone):
            await writer.save(FeedState(key=feed.key, url=feed.url, total_items=3))
    finally:
        await writer.close()

    store = AtomicKafkaStateStore(servers, settings, settings.topic_raw)
    poller = Poller(settings, FeedList(feeds=[kept]), None, store)
    poller.assigned = set()  # a group member, as GroupMembership.start makes it
    try:
        await poller.load_state()
    finally:
        await poller.close()
        await store.close()
    assert set(poller.states) == {kept.key}

    records = await _records(read_committed_records, servers, settings.topic_poller_state)
    assert [value is None for key, value in records if key == gone.key] == [False, True]
    assert all(value is not None for key, value in records if key == kept.key)
    reader = KafkaStateStore(servers, settings)
    try:
        assert set(await reader.load()) == {kept.key}
    finally:
        await reader.close()

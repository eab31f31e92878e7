"""``feeds status`` against Kafka: the feed list from the feeds topic and the state from
the state topic, read a few partitions a page, paged by health with the cursor."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.sources.coordination import KafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.feedtopic import FeedTopic
from pipeline.sources.state import FeedState
from pipeline.sources.status import read_feed_status, read_feed_status_page

pytestmark = pytest.mark.integration


async def test_pages_by_health_from_the_topics(stack: Any, isolated: Any) -> None:
    settings = isolated(stack.settings, "status", poller_partitions=8)
    servers = stack.kafka_bootstrap
    await ensure_poller_topics(servers, settings)
    feeds = [FeedConfig(url=f"https://status{i}.test/rss") for i in range(120)]
    await FeedTopic(servers, settings).write(feeds)
    store = KafkaStateStore(servers, settings)
    disabled = set()
    try:
        for n, feed in enumerate(feeds[:100]):  # the last 20 never polled: "new"
            state = FeedState(key=feed.key, url=feed.url, last_poll_at=1.0)
            if n % 25 == 0:
                state.disabled, state.consecutive_failures = "gone (HTTP 410)", 1
                disabled.add(feed.key)
            await store.save(state)
    finally:
        await store.close()
    found: list[str] = []
    cursor = None
    for _page in range(10):
        page = await read_feed_status_page(
            settings.model_copy(update={"kafka_bootstrap": servers}),
            health="disabled", cursor=cursor, limit=50,
        )  # fmt: skip
        assert all(r.health == "disabled" for r in page.rows)
        found.extend(r.key for r in page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(found) == sorted(disabled)
    everything = await read_feed_status(settings.model_copy(update={"kafka_bootstrap": servers}))
    health = {r.key: r.health for r in everything}
    assert len(health) == 120
    assert sum(1 for h in health.values() if h == "new") == 20

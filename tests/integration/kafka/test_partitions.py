"""`setup --partitions / --poller-partitions` on the real broker: topics grow, the feeds'
state moves to the new count's partitions (nothing lost, no copy left behind), shrinking
and changing the poller count under running pollers are refused, and a poller with the old
count refuses to start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.errors import ConfigError
from pipeline.kafka.client import start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import (
    check_feeds_topic,
    ensure_topics,
    partition_counts,
)
from pipeline.provision import article_topics, grow_partitions, poller_topics
from pipeline.sources.coordination import KafkaStateStore, ensure_poller_topics
from pipeline.sources.state import FeedState, partition_for

pytestmark = pytest.mark.integration

Isolated = Callable[..., Any]

FEEDS = [f"feed-{i:03d}" for i in range(60)]


async def test_partitions_grow_and_the_feed_state_moves_along(
    stack: Any, isolated: Isolated
) -> None:
    settings = isolated(stack.settings, "grow", topic_partitions=2, poller_partitions=2)
    await ensure_topics(settings)
    await ensure_poller_topics(stack.kafka_bootstrap, settings)
    store = KafkaStateStore(stack.kafka_bootstrap, settings)
    try:
        for n, key in enumerate(FEEDS):
            await store.save(FeedState(key=key, url=f"http://127.0.0.1/{key}", total_items=n))
        await store.forget([FEEDS[0]])  # a removed feed: tombstoned, must stay gone
    finally:
        await store.close()

    with pytest.raises(ConfigError, match="cannot remove partitions"):
        await grow_partitions(settings, partitions=1)

    report = await grow_partitions(settings, partitions=4, poller_partitions=5)
    counts = await partition_counts(settings, article_topics(settings) + poller_topics(settings))
    assert {t: counts[t] for t in article_topics(settings)} == dict.fromkeys(
        article_topics(settings), 4
    )
    assert {t: counts[t] for t in poller_topics(settings)} == dict.fromkeys(
        poller_topics(settings), 5
    )
    moving = [k for k in FEEDS[1:] if partition_for(k, 2) != partition_for(k, 5)]
    assert report.state_moved == len(moving) > 0
    assert report.state_tombstoned == len(moving)

    grown = settings.model_copy(update={"poller_partitions": 5, "topic_partitions": 4})
    reader = KafkaStateStore(stack.kafka_bootstrap, grown)
    try:
        for partition in range(5):
            loaded = await reader.load([partition])
            expected = {k for k in FEEDS[1:] if partition_for(k, 5) == partition}
            assert set(loaded) == expected, partition  # each feed where the new count puts it
            assert all(loaded[k].total_items == FEEDS.index(k) for k in loaded)
    finally:
        await reader.close()

    # running it again changes nothing; a poller with the old count refuses to start
    again = await grow_partitions(grown, partitions=4, poller_partitions=5)
    assert again.changes == [] and again.state_moved == again.state_tombstoned == 0
    with pytest.raises(ConfigError, match="NEWSWIRE_POLLER_PARTITIONS=5"):
        await check_feeds_topic(settings)
    await check_feeds_topic(grown)


async def test_poller_partitions_do_not_change_under_running_pollers(
    stack: Any, isolated: Isolated
) -> None:
    settings = isolated(stack.settings, "grow-busy", poller_partitions=2)
    await ensure_poller_topics(stack.kafka_bootstrap, settings)
    member = AIOKafkaConsumer(
        **client_options(settings, stack.kafka_bootstrap), group_id=settings.poller_group
    )
    member.subscribe([settings.topic_feeds])
    await start_client(member, stack.kafka_bootstrap)
    try:
        await member.getmany(timeout_ms=3000)  # joined the group
        with pytest.raises(ConfigError, match="poller\\(s\\) are running"):
            await grow_partitions(settings, poller_partitions=3)
        counts = await partition_counts(settings, poller_topics(settings))
        assert set(counts.values()) == {2}  # nothing changed
        forced = await grow_partitions(settings, poller_partitions=3, force=True)
        assert {c.after for c in forced.changes} == {3}
    finally:
        await member.stop()


async def test_a_missing_topic_is_created_by_setup_not_grown(
    stack: Any, isolated: Isolated
) -> None:
    settings = isolated(stack.settings, "grow-missing")
    report = await grow_partitions(settings, partitions=3)
    assert report.changes == []  # nothing to grow: setup creates it with the new count
    assert await partition_counts(settings, article_topics(settings)) == {}

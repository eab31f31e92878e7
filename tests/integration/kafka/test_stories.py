"""The story table on real Kafka: two workers share clusters and fingerprints, a restart
reads a bounded tail of the topic, expired entries are gone, old records are ignored."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.enrich.dedup import StoryRecord, assign_cluster, fingerprint
from pipeline.enrich.stories import StoryIndex
from pipeline.kafka.client import make_producer
from pipeline.kafka.stories import StoryTable
from pipeline.kafka.topics import TopicSpec, create_missing_topics, stories_config
from pipeline.provision import run_setup
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def table(settings: Settings, capacity: int = 1000, ttl: float | None = 3600.0) -> StoryTable:
    return StoryTable(settings, settings.topic_stories, StoryIndex(capacity, ttl_seconds=ttl))


async def test_two_workers_share_clusters_and_fingerprints(
    stack: Any, isolated: Any, wait_for: Any, random_sig: Any, near: Any
) -> None:
    settings = isolated(stack.settings, "table")
    first, second = table(settings), table(settings)
    await first.start()
    await second.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        story = random_sig()
        fp = fingerprint("the text of story one")
        assert assign_cluster(story, first, "one", fp=fp) == "one"
        assert second.candidates(near(story)) == {}  # nothing is shared before the flush
        assert await first.flush(producer) == 1
        assert first.pending == []

        async def replicated() -> bool:
            return second.duplicate_of(fp, "copy") == "one"

        await wait_for(replicated, 30, "the second table to see the first one's article", 0.2)
        # the same story from another source, on the other worker: the same cluster
        member = near(story, 0.2)
        assert assign_cluster(member, second, "two", fp=fingerprint("two")) == "one"
        await second.flush(producer)

        async def member_back() -> bool:
            return len(first.index) == 2

        await wait_for(member_back, 30, "the member to reach the first table", 0.2)
        assert first.duplicate_of(fingerprint("two"), "x") == "two"
        assert set(first.candidates(near(member, 0.1))) == {"one"}
        assert len(second.index) == 2  # its own record came back and was skipped
    finally:
        await first.stop()
        await second.stop()
        await producer.stop()


async def test_a_restart_reads_at_most_the_bound(
    stack: Any, isolated: Any, random_sig: Any
) -> None:
    settings = isolated(stack.settings, "bounded")
    writer = table(settings, capacity=100_000)
    await writer.start()
    producer = make_producer(settings)
    await producer.start()
    written = 2000
    try:
        for n in range(written):
            writer.remember(StoryRecord(f"a{n}", f"a{n}", random_sig(), fingerprint(f"t{n}"), True))
        assert await writer.flush(producer) == written
    finally:
        await writer.stop()
        await producer.stop()
    capacity = 200  # 10x less than the topic holds
    restarted = table(settings, capacity=capacity)
    started = time.monotonic()
    await restarted.start()
    try:
        partitions = settings.topic_partitions
        assert restarted.loaded <= capacity + partitions  # the tail only, per partition
        assert len(restarted.index) <= capacity
        assert restarted.loaded >= capacity * 0.8  # and the tail is really read
        held = [n for n in range(written) if restarted.duplicate_of(fingerprint(f"t{n}"), "x")]
        assert len(held) == len(restarted.index)
        assert min(held) > written - 3 * capacity  # the newest records, not the oldest
        assert time.monotonic() - started < 30
    finally:
        await restarted.stop()


async def test_expired_entries_are_gone_from_reads_memory_restarts_and_topic_config(
    stack: Any, isolated: Any, random_sig: Any, near: Any
) -> None:
    settings = isolated(stack.settings, "ttl")
    short = table(settings, capacity=8, ttl=3.0)  # 8 generations of one entry
    await short.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        old = random_sig()
        assign_cluster(old, short, "old", fp=fingerprint("old"))
        await short.flush(producer)
        assert short.duplicate_of(fingerprint("old"), "x") == "old"
        await asyncio.sleep(3.3)
        assert short.duplicate_of(fingerprint("old"), "x") is None
        assert short.candidates(near(old)) == {}
        assign_cluster(random_sig(), short, "new", fp=fingerprint("new"))
        await short.flush(producer)  # the expired generation is dropped
        assert len(short.index) == 1 and short.index.evicted["expired"] == 1
        # a restart does not load what left the window (seek by time), only the rest
        again = table(settings, capacity=8, ttl=3.0)
        await again.start()
        try:
            assert again.loaded == 1 and again.duplicate_of(fingerprint("new"), "x") == "new"
        finally:
            await again.stop()
    finally:
        await short.stop()
        await producer.stop()
    assert await topic_config(settings) == {
        "cleanup.policy": "compact,delete",
        "retention.ms": "3000",
    }


async def test_a_topic_of_the_key_per_band_version_still_works(
    stack: Any, isolated: Any, random_sig: Any
) -> None:
    """The stories topic as earlier versions left it: plain ``compact`` (or another window),
    records keyed ``b:``/``s:``/``x:``. The table ignores those records and works; setup
    gives the topic this version's window."""
    settings = isolated(stack.settings, "oldtopic", story_window_days=2.0)
    await create_missing_topics(
        settings,
        [TopicSpec(settings.topic_stories, settings.topic_partitions, stories_config(None))],
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in (
            (b"b:0:00ff00ff00ff00ff", b"old-cluster"),
            (b"s:old-cluster", b"AAAAAAAA"),
            (b"x:" + b"0" * 32, b"old-article"),
        ):
            await producer.send_and_wait(settings.topic_stories, value=value, key=key)
        current = StoryTable(
            settings, settings.topic_stories, StoryIndex(100, ttl_seconds=2 * 86400)
        )
        await current.start()
        try:
            assert current.ignored == 3 and len(current.index) == 0
            assert assign_cluster(random_sig(), current, "fresh") == "fresh"
            assert await current.flush(producer) == 1
        finally:
            await current.stop()
    finally:
        await producer.stop()
    report = await run_setup(settings)
    assert report.topics_configured[settings.topic_stories] == {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(2 * 86_400_000),
    }


async def topic_config(settings: Settings) -> dict[str, str]:
    """The stories topic's own settings."""
    from pipeline.kafka.topics import topic_overrides

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, settings.topic_stories)
        responses = await admin.describe_configs([resource])
        described = [r for resp in responses for r in resp.to_object()["resources"]]
        return topic_overrides(described[0])
    finally:
        await admin.close()

"""State record v2 against the real compacted topic: small records, revisions published
once through the atomic store, polls that only reschedule write nothing, and a version-1
record (rolling upgrade) read without publishing anything again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.sources.coordination import AtomicKafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig, FeedList
from pipeline.sources.poller import Poller

pytestmark = pytest.mark.integration


async def _poll(settings: Any, servers: str, feeds: list[FeedConfig]) -> Poller:
    store = AtomicKafkaStateStore(servers, settings, settings.topic_raw)
    poller = Poller(settings, FeedList(feeds=feeds), None, store)
    try:
        await poller.run_once(respect_backoff=False)
    finally:
        await poller.close()
        await store.close()
    return poller


async def test_revisions_and_quiet_polls_in_kafka(
    stack: Any,
    feed_server: Any,
    feed_route: Any,
    rss_feed: Any,
    isolated: Any,
    read_committed_records: Any,
) -> None:
    server = feed_server
    settings = isolated(stack.settings, "staterec", poller_partitions=2, allow_private_feeds=True)
    servers = stack.kafka_bootstrap
    await ensure_poller_topics(servers, settings)
    items = [(f"Story {i}", f"http://site.test/st/{i}") for i in range(40)]
    server.routes["/st"] = feed_route(body=rss_feed("St", items))
    feed = FeedConfig(url=server.url("/st"))

    await _poll(settings, servers, [feed])
    raw = await read_committed_records(servers, settings.topic_raw)
    assert len(raw) == 40
    state_records = await read_committed_records(servers, settings.topic_poller_state)
    assert len(state_records) == 1
    value = state_records[0].value
    assert value is not None and len(value) <= 2048
    assert json.loads(value)["v"] == 2

    # Two restarts that only see 304s: no state record, no article.
    await _poll(settings, servers, [feed])
    await _poll(settings, servers, [feed])
    assert len(await read_committed_records(servers, settings.topic_poller_state)) == 1
    assert len(await read_committed_records(servers, settings.topic_raw)) == 40

    # One story corrected: published again once, as a newer revision of the same id.
    items[3] = ("Story 3, corrected", items[3][1])
    server.routes["/st"] = feed_route(body=rss_feed("St", items))
    await _poll(settings, servers, [feed])
    await _poll(settings, servers, [feed])
    raw = await read_committed_records(servers, settings.topic_raw)
    revised = [json.loads(r.value) for r in raw[40:]]
    assert [r["title"] for r in revised] == ["Story 3, corrected"]
    first = next(json.loads(r.value) for r in raw[:40] if json.loads(r.value)["title"] == "Story 3")
    assert revised[0]["id"] == first["id"] and revised[0]["fetched_at"] > first["fetched_at"]


async def test_version_1_record_is_read_after_an_upgrade(
    stack: Any, feed_server: Any, feed_route: Any, rss_feed: Any, isolated: Any
) -> None:
    """A poller of the old version remembered ids as strings; the new one reads them and
    publishes nothing of what the old one published."""
    server = feed_server
    from aiokafka import AIOKafkaProducer

    from pipeline.identity import article_id
    from pipeline.sources.state import partition_for

    settings = isolated(stack.settings, "statev1", poller_partitions=2, allow_private_feeds=True)
    servers = stack.kafka_bootstrap
    await ensure_poller_topics(servers, settings)
    items = [(f"Old {i}", f"http://site.test/v1/{i}") for i in range(5)]
    server.routes["/v1"] = feed_route(body=rss_feed("V1", items), etag=False)
    feed = FeedConfig(url=server.url("/v1"))
    old = {
        "key": feed.key, "url": feed.url, "body_hash": "0" * 64, "total_items": 5,
        "seen_ids": [article_id(url) for _t, url in items], "next_poll_at": 0.0,
    }  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic_poller_state,
            json.dumps(old).encode(),
            key=feed.key.encode(),
            partition=partition_for(feed.key, settings.poller_partitions),
        )
    finally:
        await producer.stop()
    poller = await _poll(settings, servers, [feed])
    state = poller.states[feed.key]  # the body changed (no ETag, old hash): parsed again
    assert state.last_outcome == "unchanged" and state.new_items == 0
    assert state.total_items == 5 and state.revisions == 0
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(
            settings.topic_poller_state, partition_for(feed.key, settings.poller_partitions)
        )
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
    finally:
        await consumer.stop()
    assert records[-1].value is not None and json.loads(records[-1].value)["v"] == 2

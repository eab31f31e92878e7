"""The feeds topic as the list of record: written by the feeds commands' logic, loaded
by a poller at start, and followed while it runs (added feeds polled, removed ones
unscheduled and their state tombstoned) without a restart."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.sources.coordination import AtomicKafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig, FeedList
from pipeline.sources.feedtopic import FeedTopic, apply_to_poller, put_feeds
from pipeline.sources.poller import Poller

pytestmark = pytest.mark.integration


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()


async def _wait(what: str, check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_feed_list_changes_reach_a_running_poller(
    stack: Any,
    feed_server: Any,
    feed_route: Any,
    rss_feed: Any,
    isolated: Any,
    read_committed_records: Any,
) -> None:
    server = feed_server
    for name in ("one", "two", "three"):
        server.routes[f"/ft/{name}"] = feed_route(
            body=rss_feed(name, [(f"{name} item", f"http://site.test/ft/{name}")])
        )
    settings = isolated(
        stack.settings, "feedtopic", poller_partitions=2, allow_private_feeds=True,
        poll_first_spread=0, poll_host_gap=0, poll_per_host=8,
    )  # fmt: skip
    servers = stack.kafka_bootstrap
    await ensure_poller_topics(servers, settings)
    await create_topic(servers, settings.topic_raw, 2)
    one, two, three = (FeedConfig(url=server.url(f"/ft/{n}")) for n in ("one", "two", "three"))
    topic = FeedTopic(servers, settings)
    first = await put_feeds(servers, settings, FeedList(feeds=[one, two]))
    assert [f.url for f in first.added] == [one.url, two.url]
    again = await put_feeds(servers, settings, FeedList(feeds=[one, two]))
    assert again.added == again.changed == [] and len(again.unchanged) == 2
    listed = await topic.load()
    assert sorted(f.url for f in listed.feeds) == sorted([one.url, two.url])

    store = AtomicKafkaStateStore(servers, settings, settings.topic_raw)
    poller = Poller(settings, listed, None, store)
    stop = asyncio.Event()
    follower = asyncio.create_task(
        topic.follow(lambda up, gone: apply_to_poller(poller, up, gone), stop, every=1.0)
    )
    runner = asyncio.create_task(poller.run_forever(stop))

    def titles() -> set[str]:
        return {json.loads(r.value)["title"] for r in records}

    records: list[Any] = []

    async def refresh() -> set[str]:
        records[:] = await read_committed_records(servers, settings.topic_raw)
        return titles()

    try:
        await _wait("the first two feeds", lambda: {one.key, two.key} <= set(poller.states))
        await _wait(
            "their states written", lambda: all(s.last_poll_at for s in poller.states.values())
        )
        # last_poll_at is set before the poll's Kafka transaction commits: wait for it.
        for _attempt in range(120):
            if await refresh() == {"one item", "two item"}:
                break
            await asyncio.sleep(0.5)
        assert titles() == {"one item", "two item"}
        changed_at = time.monotonic()
        change = await put_feeds(servers, settings, FeedList(feeds=[three]), remove=[two.url])
        assert change.added == [three] and change.removed == [two.url]
        await _wait(
            "the change applied", lambda: three.key in poller.feeds and two.key not in poller.feeds
        )
        await _wait(
            "the new feed polled",
            lambda: three.key in poller.states and bool(poller.states[three.key].last_poll_at),
        )
        assert time.monotonic() - changed_at < 60
        assert two.key not in poller.scheduler
        assert "three item" in await refresh()
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
        await asyncio.wait_for(follower, 30)
        await poller.close()
        await store.close()
    state_records = await read_committed_records(servers, settings.topic_poller_state)
    last = {r.key.decode(): r.value for r in state_records}
    assert last[two.key] is None  # tombstoned: the compacted topic forgets it
    assert last[three.key] is not None
    assert sorted(f.url for f in (await topic.load()).feeds) == sorted([one.url, three.url])

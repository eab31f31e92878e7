"""A Kafka broker restart while the poller runs (issue 9, fault 3), on a real broker of the
test's own (a Kafka-only local stack, so the session's servers are not disturbed): the poll
that meets the stopped broker fails without counting against the feed, its state is kept,
and once the broker is back the feed's items are published exactly once and its committer,
broken by the restart, is replaced."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.settings import Settings
from pipeline.sources.coordination import AtomicKafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.poller import Poller
from workshop.stack import LocalStack

if TYPE_CHECKING:  # types only: feed fixtures come from tests.plugins.feeds
    from tests.plugins.feeds import FeedServer

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


async def test_broker_restart_is_not_a_feed_failure_and_loses_nothing(
    restartable_broker: LocalStack,
    feed_server: FeedServer,
    feed_route: Any,
    read_committed: Any,
    rss_feed: Any,
) -> None:
    broker = restartable_broker
    run = uuid.uuid4().hex[:8]
    bootstrap = broker.kafka.bootstrap
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_raw=f"test.restart.raw.{run}",
        topic_poller_state=f"test.restart.state.{run}",
        topic_feeds=f"test.restart.feeds.{run}",
        poller_group=f"test-restart-{run}",
        poller_partitions=2,
        allow_private_feeds=True,
        poller_metrics_port=0,
        poll_parse_workers=1,
        poll_backoff_base=60.0,
        poll_timeout=10.0,
    )
    await ensure_poller_topics(bootstrap, settings)
    server = feed_server
    items = [(f"Story {i}", f"http://site.test/story-{i}") for i in range(5)]
    server.routes["/feed"] = feed_route(body=rss_feed("Restart", items[:3]))
    feed = FeedConfig(url=server.url("/feed"), name="restart")
    clock = Clock()
    store = AtomicKafkaStateStore(bootstrap, settings, settings.topic_raw)
    poller = Poller(settings, [feed], None, store, clock=clock)
    sent: dict[str, Any] = {}
    try:
        await poller.run_once()
        assert poller.states[feed.key].new_items == 3

        broker.down()  # the broker goes away; the feed grows meanwhile
        server.routes["/feed"] = feed_route(body=rss_feed("Restart", items))
        stopped = time.monotonic()
        clock.now += 3600
        await poller.run_once(respect_backoff=False)
        state = poller.states[feed.key]
        assert state.consecutive_failures == 0, state.last_error  # not the feed's fault
        assert state.last_outcome != "error"
        assert state.next_poll_at - clock.now <= 60  # tried again soon, no 24 h backoff

        broker.up()  # the same broker, restarted
        clock.now += 3600
        summary = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the client reconnects by itself
            summary = await poller.run_once()
            if poller.states[feed.key].new_items:
                break
            clock.now += 60
        recovered = round(time.monotonic() - stopped, 1)
        assert poller.states[feed.key].new_items == 2, summary
        assert poller.states[feed.key].consecutive_failures == 0
        sent = {"items": len(items), "recovered_s": recovered}
    finally:
        await poller.close()
        await store.close()
        server.stop()
    records = await read_committed(bootstrap, settings.topic_raw)
    ids = Counter(json.loads(r)["id"] for r in records)
    print(
        f"broker restart: {sent}, published {len(ids)}, duplicates {sum(ids.values()) - len(ids)}"
    )
    assert len(ids) == len(items) and set(ids.values()) == {1}  # all, exactly once

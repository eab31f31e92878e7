"""The poller against real Kafka (session fixture ``stack``) and the loopback feed server:
first poll publishes every entry, state in the compacted topic survives a restart, the
second poll is conditional (304s) and publishes nothing."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka.client import make_producer, raw_publisher
from pipeline.kafka.topics import topic_partitions
from pipeline.sources.coordination import KafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.poller import Poller

if TYPE_CHECKING:  # types only: feed fixtures come from tests.plugins.feeds
    from tests.plugins.feeds import FeedServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.eval_feeds,
]


@pytest.fixture(scope="module")
def server(feed_server_factory: Any) -> FeedServer:
    srv = feed_server_factory()
    srv.add_eval_feeds()
    return srv


async def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[dict[str, Any]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(*tps, timeout_ms=1000)
            for records in batch.values():
                out.extend(json.loads(r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def test_poll_publish_restart_and_304(
    stack: Any, server: FeedServer, feed_route: Any, feeds_dir: Path, rss_feed: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    settings = stack.settings.model_copy(update={"topic_raw": f"test.poller.raw.{run}"})
    config = settings.model_copy(
        update={
            "allow_private_feeds": True,
            "topic_poller_state": f"test.poller.state.{run}",
            "topic_feeds": f"test.poller.feeds.{run}",
            "poller_group": f"test-poller-{run}",
            "poller_partitions": 4,
            "poller_metrics_port": 0,
        }
    )
    await ensure_poller_topics(stack.kafka_bootstrap, config)
    manifest = {m["file"]: m for m in json.loads((feeds_dir / "manifest.json").read_text())}
    feeds = [FeedConfig(url=server.url(f"/feeds/{name}"), name=name) for name in manifest]
    server.routes["/grow"] = feed_route(body=rss_feed("Grow", [("Old", "http://site.test/o")]))
    feeds.append(FeedConfig(url=server.url("/grow"), name="grow"))

    async def poll_once() -> Any:
        producer = make_producer(settings)
        await producer.start()
        store = KafkaStateStore(stack.kafka_bootstrap, config)
        poller = Poller(config, feeds, raw_publisher(producer, config.topic_raw), store)
        try:
            return await poller.run_once()
        finally:
            await poller.close()
            await store.close()
            await producer.stop()

    first = await poll_once()
    assert first.failed == 0 and first.polled == 21
    records = await read_topic(stack.kafka_bootstrap, settings.topic_raw)
    per_feed = Counter(r["source"]["feed_url"] for r in records)
    for name, item in manifest.items():
        expected = 11 if name == "almonitor.rss.xml" else item["entries"]  # 3 stories x4
        assert per_feed[server.url(f"/feeds/{name}")] == expected, name
    by_title = {r["title"]: r for r in records}
    oren = by_title["В Бузулуке главные стройплощадки – детсад и Ледовый дворец"]
    assert oren["published_at"] == "2014-01-22T14:31:31Z"
    assert oren["canonical_url"] == "http://www.oren.ru/news/2743422/"
    assert "Mãe de utente é a nova presidente da Raríssimas" in by_title
    assert len({r["id"] for r in records}) == len(records)

    # "Restart": new poller, state from the compacted topic -> conditional requests.
    server.requests.clear()
    server.routes["/grow"] = feed_route(
        body=rss_feed(
            "Grow",
            [
                ("New 1", "http://site.test/n1"),
                ("New 2", "http://site.test/n2"),
                ("Old", "http://site.test/o"),
            ],
        )
    )
    second = await poll_once()
    assert second.not_modified == 20 and second.failed == 0 and second.new_items == 2
    assert all("if-none-match" in h for p, h in server.requests if p.startswith("/feeds/"))
    after = await read_topic(stack.kafka_bootstrap, settings.topic_raw)
    assert len(after) == len(records) + 2
    assert {r["title"] for r in after[len(records) :]} <= {"New 1", "New 2"} or {
        r["title"] for r in after
    } - {r["title"] for r in records} == {"New 1", "New 2"}

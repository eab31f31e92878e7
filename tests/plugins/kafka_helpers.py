"""Small helpers shared by the integration tests (unique names, polling, Kafka reads), as a
pytest plugin: each is a fixture of the same name that returns the function, so a test
takes ``isolated`` as an argument and calls it as before, and never imports this module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka.client import make_producer, publish_raw
from pipeline.kafka.topics import topic_partitions
from pipeline.settings import Settings


def isolated(settings: Settings, name: str, **extra: Any) -> Settings:
    """Settings with topics, alias and consumer group of their own, so tests never mix."""
    tag = f"{name}-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={
            "index_alias": f"nwtest-{tag}-articles",
            "topic_raw": f"nwtest.{tag}.raw",
            "topic_enriched": f"nwtest.{tag}.enriched",
            "topic_dlq": f"nwtest.{tag}.dlq",
            "story_table_index": f"nwtest-{tag}-story-table",
            "topic_copies": f"nwtest.{tag}.copies",
            "topic_inflight": f"nwtest.{tag}.inflight",
            "topic_alert_queries": f"nwtest.{tag}.alert-queries",
            "topic_alerts": f"nwtest.{tag}.alerts",
            "topic_alerts_dead": f"nwtest.{tag}.alerts-dead",
            "topic_alerts_status": f"nwtest.{tag}.alerts-status",
            "topic_alert_digests": f"nwtest.{tag}.alert-digests",
            "trend_index": f"nwtest-{tag}-trends",
            "story_index": f"nwtest-{tag}-stories",
            "topic_feeds": f"nwtest.{tag}.feeds",
            "topic_poller_state": f"nwtest.{tag}.poller-state",
            "poller_group": f"nwtest-{tag}-poller",
            "poller_metrics_port": 0,
            "worker_id": f"nwtest-{tag}",
            **extra,
        }
    )


def env_for(settings: Settings) -> dict[str, str]:
    """NEWSWIRE_* variables that reproduce ``settings`` in a child process."""
    names = (
        "kafka_bootstrap", "search_engine", "opensearch_url", "elasticsearch_url", "index_alias",
        "topic_raw",
        "topic_enriched", "topic_dlq", "story_table_index", "worker_id", "worker_web_port",
        "batch_size", "batch_seconds", "home", "topic_partitions", "topic_feeds",
        "topic_poller_state", "poller_group", "poller_metrics_port", "ner_backend",
        "corenlp_url", "corenlp_port", "worker_buffer", "topic_copies", "topic_alert_queries",
        "topic_alerts", "topic_alerts_dead", "topic_alerts_status", "story_index",
        "topic_alert_digests", "trend_index", "topic_inflight", "worker_crash_limit",
        "topic_replication", "topic_min_insync_replicas", "index_replicas",
    )  # fmt: skip
    env: dict[str, str] = {}
    for name in names:
        value = getattr(settings, name)
        if value is not None:
            env[f"NEWSWIRE_{name.upper()}"] = str(value)
    return env


async def wait_for(
    check: Callable[[], Awaitable[bool]], limit: float, what: str, every: float = 1.0
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")


async def read_topic(bootstrap: str, topic: str, expect: int, limit: float = 60) -> list[Any]:
    """Read ``expect`` JSON records from the start of ``topic`` (fails if they never come)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + limit
        while len(records) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records.extend(json.loads(m.value) for m in messages)
    finally:
        await consumer.stop()
    return records


async def read_committed_records(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of ``topic`` (tombstones included), in order within each
    partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)  # the last stable offsets
        out: dict[TopicPartition, list[Any]] = defaultdict(list)
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp, records in batch.items():
                out[tp].extend(records)
        return [record for tp in tps for record in out[tp]]
    finally:
        await consumer.stop()


async def read_committed(bootstrap: str, topic: str) -> list[bytes]:
    """Every committed record value of ``topic``, in order within each partition."""
    records = await read_committed_records(bootstrap, topic)
    return [r.value for r in records if r.value is not None]


def session_fixture_of(function: Callable[..., Any]) -> Any:
    """A session fixture named after ``function`` that returns it."""

    def fixture() -> Callable[..., Any]:
        return function

    fixture.__doc__ = function.__doc__
    return pytest.fixture(scope="session", name=function.__name__)(fixture)


isolated_fixture = session_fixture_of(isolated)
env_for_fixture = session_fixture_of(env_for)
wait_for_fixture = session_fixture_of(wait_for)
read_topic_fixture = session_fixture_of(read_topic)
read_committed_records_fixture = session_fixture_of(read_committed_records)
read_committed_fixture = session_fixture_of(read_committed)


class ArticleFeed:
    """Publishes ``pool`` in chunks of ``batch`` every ``every`` seconds until stopped."""

    def __init__(self, settings: Settings, pool: list[Any], batch: int, every: float) -> None:
        self.settings, self.pool, self.batch, self.every = settings, pool, batch, every
        self.sent: list[Any] = []
        self.task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()

    async def _run(self) -> None:
        producer = make_producer(self.settings)
        await producer.start()
        try:
            while len(self.sent) < len(self.pool) and not self.stopping.is_set():
                chunk = self.pool[len(self.sent) : len(self.sent) + self.batch]
                await publish_raw(producer, self.settings.topic_raw, chunk)
                self.sent.extend(chunk)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.every)
        finally:
            await producer.stop()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def finish(self) -> None:
        """Wait until the whole pool is sent (raises what the sending raised)."""
        if self.task is not None:
            await self.task

    async def stop(self) -> None:
        """Stop after the chunk being sent (a cancel mid-send could leave records the
        broker took but ``sent`` does not list)."""
        self.stopping.set()
        await self.finish()


@pytest.fixture(scope="session")
def article_feed() -> type[ArticleFeed]:
    """``ArticleFeed(settings, pool, batch, every)``: articles published while a fault or a
    rebalance happens."""
    return ArticleFeed

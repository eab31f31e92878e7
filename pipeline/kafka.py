"""Kafka connector: topics, an idempotent producer and record (de)serialisation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.models import RawArticle
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: Larger than any article we keep (bodies are capped by max_body_chars).
MAX_REQUEST_SIZE = 4 * 1024 * 1024


def bootstrap(settings: Settings) -> str:
    """The configured Kafka bootstrap servers, else the running local stack's."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    from pipeline.stack import local_endpoints

    endpoints = local_endpoints(settings)
    if endpoints and endpoints.get("kafka_bootstrap"):
        return str(endpoints["kafka_bootstrap"])
    raise ConfigError(
        "no Kafka configured: set NEWSWIRE_KAFKA_BOOTSTRAP or start the local stack "
        "with `newswire stack up`"
    )


def encode(record: dict[str, Any] | RawArticle) -> bytes:
    """JSON bytes for a Kafka value."""
    if isinstance(record, RawArticle):
        return record.model_dump_json().encode("utf-8")
    return json.dumps(record, ensure_ascii=False, default=str).encode("utf-8")


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with ``acks=all`` and idempotence (DESIGN.md delivery guarantees)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap(settings),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": "gzip",
        "linger_ms": 20,
        "max_request_size": MAX_REQUEST_SIZE,
        "client_id": f"{settings.worker_id}-producer",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def start_client(client: Any, servers: str) -> None:
    """Start an aiokafka client; an unreachable broker becomes a clear error (and the
    half-started client is closed)."""
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await (client.close() if hasattr(client, "close") else client.stop())
        raise KafkaUnavailableError(servers, str(exc) or type(exc).__name__) from exc


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> int:
    """Send (key, value) records and wait until the broker acknowledged every one."""
    futures = [await producer.send(topic, value=value, key=key) for key, value in records]
    for future in futures:
        await future
    return len(futures)


async def publish_raw(
    producer: AIOKafkaProducer, topic: str, articles: Iterable[RawArticle]
) -> int:
    """Send raw articles keyed by id and wait until the broker acknowledged all of them."""
    return await send_all(producer, topic, ((a.id.encode("utf-8"), encode(a)) for a in articles))


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the raw, enriched and DLQ topics if missing; returns the ones created."""
    servers = bootstrap(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await start_client(admin, servers)
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
            )
            for name in (settings.topic_raw, settings.topic_enriched, settings.topic_dlq)
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            created = [t.name for t in wanted]
            log.info("kafka.topics_created", topics=created)
    finally:
        await admin.close()
    return created


class ReplicatedTable(MutableMapping[str, str]):
    """A key-value table every worker holds whole, kept on a compacted Kafka topic.

    Reads are local; writes are local at once and published by :meth:`flush`, which a
    caller awaits before acknowledging the events that caused them. A background consumer
    applies the writes of the other workers. This is what a Faust ``GlobalTable`` does;
    it is kept explicit here because Faust tables may only be written while a stream is
    positioned on an event, and the agents process micro-batches with manual acks.

    With ``ttl_seconds`` entries expire: reads ignore them, flushes prune them from memory,
    and the topic deletes old segments (``compact,delete``), so the table stays bounded.
    """

    def __init__(self, settings: Settings, topic: str, ttl_seconds: float | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.ttl = ttl_seconds
        self.data: dict[str, str] = {}
        self.written: dict[str, float] = {}
        self.pending: dict[str, str] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the compacted topic if needed, load it whole, then follow it."""
        servers = bootstrap(self.settings)
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await start_client(admin, servers)
        try:
            if self.topic not in set(await admin.list_topics()):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                self.topic,
                                num_partitions=self.settings.topic_partitions,
                                replication_factor=self.settings.topic_replication,
                                topic_configs=self._topic_configs(),
                            )
                        ]
                    )
            partitions = await _wait_partitions(admin, self.topic)
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(self.settings),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while await _behind(consumer, end):
            self._apply(await consumer.getmany(timeout_ms=500))
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(), name=f"table-{self.topic}")
        log.info("table.loaded", topic=self.topic, keys=len(self.data))

    def _topic_configs(self) -> dict[str, str]:
        if self.ttl is None:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "compact,delete", "retention.ms": str(int(self.ttl * 1000))}

    def _expired(self, key: str, now: float | None = None) -> bool:
        if self.ttl is None:
            return False
        return (now or time.time()) - self.written.get(key, 0.0) > self.ttl

    def prune(self) -> int:
        """Forget expired entries; returns how many."""
        if self.ttl is None:
            return 0
        now = time.time()
        expired = [k for k in self.data if k not in self.pending and self._expired(k, now)]
        for key in expired:
            del self.data[key]
            self.written.pop(key, None)
        return len(expired)

    async def _follow(self) -> None:
        """Apply the other workers' writes; a Kafka error is logged and the loop goes on."""
        assert self._consumer is not None
        while True:
            try:
                self._apply(await self._consumer.getmany(timeout_ms=1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("table.follow_failed", topic=self.topic, error=str(exc))
                await asyncio.sleep(1.0)

    def _apply(self, batch: dict[Any, list[Any]]) -> None:
        for messages in batch.values():
            for message in messages:
                key = message.key.decode("utf-8")
                if key in self.pending:
                    continue  # our own newer write wins until it is flushed
                if message.value is None:
                    self.data.pop(key, None)
                    self.written.pop(key, None)
                else:
                    self.data[key] = message.value.decode("utf-8")
                    self.written[key] = message.timestamp / 1000.0

    async def flush(self, producer: AIOKafkaProducer) -> int:
        """Publish the local writes and wait for the broker's acknowledgement."""
        pending = dict(self.pending)
        sent = await send_all(
            producer,
            self.topic,
            ((k.encode("utf-8"), v.encode("utf-8")) for k, v in pending.items()),
        )
        for key, value in pending.items():  # keep what was rewritten during the send
            if self.pending.get(key) == value:
                del self.pending[key]
        self.prune()
        return sent

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def __getitem__(self, key: str) -> str:
        if self._expired(key):
            raise KeyError(key)
        return self.data[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.data[key] = value
        self.written[key] = time.time()
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("the table only grows; use a new topic to reset it")

    def __iter__(self) -> Iterator[str]:
        now = time.time()
        return iter([k for k in self.data if not self._expired(k, now)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return True
    return False


async def _wait_partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    """The partitions of a topic, waiting briefly for a just-created one to appear."""
    for _ in range(50):
        for described in await admin.describe_topics([topic]):
            if described.get("topic") == topic and described.get("partitions"):
                ids = sorted(p["partition"] for p in described["partitions"])
                return [TopicPartition(topic, p) for p in ids]
        await asyncio.sleep(0.2)
    raise ConfigError(f"topic {topic} has no partitions (is it created?)")

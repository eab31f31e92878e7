"""Compacted topics: read one to its end, and the replicated table kept on one.

A compacted topic keeps the latest record per key, so reading it from the beginning to
the end offsets it had when the reading started rebuilds the state it stores: the poller's
feed state and the worker's story table are both loaded that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.kafka.client import bootstrap, send_all, start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import COMPACTED, TopicSpec, create_missing_topics, wait_partitions
from pipeline.settings import Settings

log = structlog.get_logger(__name__)


async def read_to_end(
    consumer: Any,
    partitions: Sequence[TopicPartition],
    apply: Callable[[Any], None],
    timeout_ms: int = 1000,
) -> None:
    """Assign ``partitions`` to ``consumer`` and ``apply`` every record from the beginning
    up to the end offsets they had when called (transaction markers included: a
    read_committed consumer's position moves past them)."""
    consumer.assign(list(partitions))
    await consumer.seek_to_beginning(*partitions)
    end = await consumer.end_offsets(list(partitions))
    remaining = {tp for tp in partitions if end[tp] > 0}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=timeout_ms)
        for records in batch.values():
            for record in records:
                apply(record)
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)


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
        spec = TopicSpec(self.topic, self.settings.topic_partitions, self._topic_configs())
        await create_missing_topics(self.settings, [spec])
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await start_client(consumer, bootstrap(self.settings))
        try:
            partitions = await wait_partitions(consumer, self.topic)
            await read_to_end(consumer, partitions, self._apply_record)
        except BaseException:  # Kafka went away while loading: the caller may start again
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(), name=f"table-{self.topic}")
        log.info("table.loaded", topic=self.topic, keys=len(self.data))

    def _topic_configs(self) -> dict[str, str]:
        if self.ttl is None:
            return dict(COMPACTED)
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
                self._apply_record(message)

    def _apply_record(self, message: Any) -> None:
        key = message.key.decode("utf-8")
        if key in self.pending:
            return  # our own newer write wins until it is flushed
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


__all__ = ["ReplicatedTable", "read_to_end"]

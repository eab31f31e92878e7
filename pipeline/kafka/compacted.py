"""Compacted topics: read one to its end.

A compacted topic keeps the latest record per key, so reading it from the beginning to
the end offsets it had when the reading started rebuilds the state it stores: the poller's
feed state is loaded that way (:func:`read_to_end`). :class:`CompactedFollower` reads a
small compacted topic whole and then follows it (the standing queries every worker
applies).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import wait_partitions
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


Records = Callable[[list[Any]], Awaitable[None]]


class CompactedFollower:
    """Reads ``topic`` whole at :meth:`start` and hands every record to ``apply`` at once,
    then hands it each poll's new records from a background task. A failing ``apply`` (the
    search engine or Kafka away) is logged and tried again at the next poll with the same
    records and any newer ones: nothing is skipped. The topic must exist."""

    def __init__(self, settings: Settings, topic: str, apply: Records, poll_ms: int = 500) -> None:
        self.settings = settings
        self.topic = topic
        self.apply = apply
        self.poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings), enable_auto_commit=False, group_id=None
        )
        await start_client(consumer, bootstrap(self.settings))
        records: list[Any] = []
        try:
            partitions = await wait_partitions(consumer, self.topic)
            await read_to_end(consumer, partitions, records.append)
            await self.apply(records)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(), name=f"follow-{self.topic}")

    async def _follow(self) -> None:
        assert self._consumer is not None
        pending: list[Any] = []  # kept until applied
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=self.poll_ms)
                pending += [r for records in batch.values() for r in records]
                if pending:
                    await self.apply(pending)
                    pending = []
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "compacted.follow_failed",
                    topic=self.topic,
                    error=f"{type(exc).__name__}: {exc}",
                )
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


__all__ = ["CompactedFollower", "read_to_end"]

"""The worker's story table: the bounded story index, replicated across workers on the
stories topic (``compact,delete``, retention = the story window)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline import metrics
from pipeline.enrich.dedup import Signature, StoryRecord
from pipeline.enrich.stories import StoryIndex, decode_record, encode_record
from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.compacted import read_tail
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import TopicSpec, create_missing_topics, stories_config, wait_partitions
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

#: Header naming the table instance that wrote a record: it skips its own when following.
WRITER_HEADER = "newswire-writer"


class StoryTable:
    """The worker's story index (:class:`pipeline.enrich.stories.StoryIndex`: bounded,
    oldest out first), replicated across workers on the stories topic.

    Reads are local; :meth:`remember` is local at once and published by :meth:`flush`,
    which a caller awaits before acknowledging the events that caused it. One record per
    article (:func:`pipeline.enrich.stories.encode_record`). A background consumer applies
    the other workers' records (its own are skipped by the writer header). :meth:`start`
    reads only the topic's tail (:func:`read_tail`): the story window, at most the index's
    capacity, so a restart costs what the bound allows. The topic is ``compact,delete``
    with the window as retention. Implements :class:`pipeline.enrich.dedup.StoryStore`.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        index: StoryIndex,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.index = index
        self.writer = uuid.uuid4().hex[:16].encode("ascii")
        self.pending: list[tuple[bytes, bytes]] = []
        #: Records read that are not this version's (earlier key-per-band records).
        self.ignored = 0
        #: Records applied by the start-up load.
        self.loaded = 0
        self._evicted = dict(index.evicted)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the topic if needed, load its recent tail, then follow it."""
        started = time.monotonic()
        spec = TopicSpec(self.topic, self.settings.topic_partitions, stories_config(self.index.ttl))
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
            since = None if self.index.ttl is None else time.time() - self.index.ttl
            self.loaded = await read_tail(
                consumer,
                partitions,
                self._apply_record,
                limit=self.index.capacity,
                since_ms=None if since is None else int(since * 1000),
            )
        except BaseException:  # Kafka went away while loading: the caller may start again
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(), name=f"table-{self.topic}")
        self._report()
        log.info(
            "table.loaded",
            topic=self.topic,
            records=self.loaded,
            ignored=self.ignored,
            entries=len(self.index),
            capacity=self.index.capacity,
            mib=round(self.index.nbytes() / 2**20, 1),
            seconds=round(time.monotonic() - started, 2),
        )

    async def _follow(self) -> None:
        """Apply the other workers' writes; a Kafka error is logged and the loop goes on."""
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000)
                for messages in batch.values():
                    for message in messages:
                        self._apply_record(message)
                self.index.expire()
                self._report()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("table.follow_failed", topic=self.topic, error=str(exc))
                await asyncio.sleep(1.0)

    def _apply_record(self, message: Any) -> None:
        for name, value in message.headers or ():
            if name == WRITER_HEADER and value == self.writer:
                return  # our own write: remembered when it was made
        record = decode_record(message.key, message.value)
        if record is None:
            self.ignored += 1
            return
        self.index.remember(record, written=message.timestamp / 1000.0)

    def _report(self) -> None:
        """Table size and evictions into the metrics."""
        metrics.STORY_TABLE_ENTRIES.set(len(self.index))
        metrics.STORY_TABLE_BYTES.set(self.index.nbytes())
        for reason, total in self.index.evicted.items():
            delta = total - self._evicted.get(reason, 0)
            if delta:
                metrics.STORY_TABLE_EVICTED.labels(reason).inc(delta)
        self._evicted = dict(self.index.evicted)

    # -- StoryStore ------------------------------------------------------------------

    def duplicate_of(self, fp: str, article_id: str) -> str | None:
        return self.index.duplicate_of(fp, article_id)

    def duplicate_entry(self, fp: str, article_id: str) -> tuple[str, str] | None:
        return self.index.duplicate_entry(fp, article_id)

    def candidates(self, sig: Signature) -> dict[str, Signature]:
        return self.index.candidates(sig)

    def remember(self, record: StoryRecord) -> None:
        """Remember at once; published by the next :meth:`flush`."""
        self.index.remember(record)
        self.pending.append(encode_record(record))

    async def flush(self, producer: AIOKafkaProducer) -> int:
        """Publish the local writes and wait for the broker's acknowledgement; they stay
        pending when that fails."""
        pending, self.pending = self.pending, []
        headers = [(WRITER_HEADER, self.writer)]
        try:
            futures = [
                await producer.send(self.topic, value=value, key=key, headers=headers)
                for key, value in pending
            ]
            for future in futures:
                await future
        except BaseException:
            self.pending = pending + self.pending
            raise
        self.index.expire()
        self._report()
        return len(pending)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


__all__ = ["WRITER_HEADER", "StoryTable"]

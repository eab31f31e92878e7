"""How several pollers share the feeds, and keep their state, through Kafka.

Several pollers split the feeds through Kafka consumer-group assignment of the
``newswire.feeds`` topic: feed ``k`` belongs to partition ``partition_for(k)``
(:mod:`pipeline.sources.state`). A poller polls the feeds of the partitions it is
assigned, finishes its in-flight polls before it gives a partition up (so no feed is
polled by two pollers at once), and loads the state of newly assigned partitions from the
compacted state topic before polling them. With the atomic store the articles of a poll
and the feed's new state are committed in one Kafka transaction, and the next owner of a
partition fences the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from pipeline.errors import KafkaUnavailableError
from pipeline.kafka.client import start_client
from pipeline.kafka.compacted import read_to_end
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import (
    COMPACTED,
    TopicSpec,
    create_missing_topics,
    topic_partitions,
)
from pipeline.settings import Settings
from pipeline.sources.state import FeedState, partition_for

log = structlog.get_logger(__name__)


async def ensure_poller_topics(bootstrap_servers: str, config: Settings) -> list[str]:
    """Create the compacted state topic and the assignment topic if missing."""
    specs = [
        TopicSpec(
            config.topic_poller_state,
            config.poller_partitions,
            {**COMPACTED, "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
        ),
        TopicSpec(config.topic_feeds, config.poller_partitions, COMPACTED),
    ]
    return await create_missing_topics(config, specs, bootstrap_servers)


#: State records decoded between two yields to the event loop.
DECODE_SLICE = 2000


class KafkaStateStore:
    """State records in a compacted Kafka topic; ``load`` reads partitions to their end."""

    def __init__(self, bootstrap_servers: str, config: Settings, producer: Any = None) -> None:
        self.bootstrap = bootstrap_servers
        self.config = config
        self._producer = producer
        self._own_producer = producer is None
        self._lock = asyncio.Lock()

    async def _get_producer(self) -> Any:
        async with self._lock:
            if self._producer is None:
                self._producer = AIOKafkaProducer(
                    **client_options(self.config, self.bootstrap),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    max_request_size=4 * 1024 * 1024,
                    client_id="newswire-poller-state",
                )
                await start_client(self._producer, self.bootstrap)
            return self._producer

    async def load(self, partitions: Iterable[int] | None = None) -> dict[str, FeedState]:
        topic = self.config.topic_poller_state
        consumer = AIOKafkaConsumer(
            **client_options(self.config, self.bootstrap),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        await start_client(consumer, self.bootstrap)
        latest: dict[bytes, bytes | None] = {}

        def apply(record: Any) -> None:
            if record.key:
                latest[record.key] = record.value  # None: a tombstone (feed removed)

        try:
            available = await topic_partitions(consumer, topic)
            wanted = sorted(available if partitions is None else set(partitions) & available)
            if wanted:
                await read_to_end(consumer, [TopicPartition(topic, p) for p in wanted], apply)
        finally:
            await consumer.stop()
        # Only the newest record of each key is decoded (the uncompacted head of the
        # topic holds many), in slices so the event loop (heartbeats) keeps running.
        states: dict[str, FeedState] = {}
        for done, (raw_key, value) in enumerate(latest.items(), 1):
            if value is not None:
                key = raw_key.decode("utf-8", "replace")
                try:
                    states[key] = FeedState.from_json(value)
                except (ValueError, TypeError) as exc:
                    log.warning("poller.state_unreadable", key=key, error=str(exc))
            if done % DECODE_SLICE == 0:
                await asyncio.sleep(0)
        return states

    async def save(self, state: FeedState) -> None:
        producer = await self._get_producer()
        partition = partition_for(state.key, self.config.poller_partitions)
        future = await producer.send(
            self.config.topic_poller_state,
            key=state.key.encode("utf-8"),
            value=state.to_json(),
            partition=partition,
        )
        await future

    async def forget(self, keys: Iterable[str]) -> None:
        """Tombstone (null value) the state of ``keys``, so compaction deletes it."""
        producer = await self._get_producer()
        futures = [
            await producer.send(
                self.config.topic_poller_state,
                key=key.encode("utf-8"),
                value=None,
                partition=partition_for(key, self.config.poller_partitions),
            )
            for key in keys
        ]
        for future in futures:
            await future

    async def close(self) -> None:
        if self._producer is not None and self._own_producer:
            await self._producer.stop()
            self._producer = None


#: Records a transaction of the atomic store may carry at most (a batch is split beyond).
#: Longest wait for a stuck committer's task or producer to stop (seconds).
STOP_TIMEOUT = 10.0
MAX_TRANSACTION_RECORDS = 2000
#: An open transaction of a dead poller blocks read_committed readers at most this long
#: when nobody fences it (the next owner of the partition fences it at once).
TRANSACTION_TIMEOUT_MS = 60_000

Record = tuple[bytes, bytes]  # (key, value)
StateRecord = tuple[bytes, bytes | None]  # a null value is a tombstone


class _PartitionCommitter:
    """The transactional producer of one state partition, with group commit.

    Its ``transactional.id`` is derived from the partition number, so the next poller
    that is assigned the partition fences this one (``init_transactions`` aborts what a
    dead or paused owner left open and makes its later commits fail): the articles and
    the state of a feed become visible together or not at all.
    """

    def __init__(self, store: AtomicKafkaStateStore, partition: int, transactional_id: str) -> None:
        self.store = store
        self.partition = partition
        self.transactional_id = transactional_id
        self.producer: Any = None
        self.pending: list[tuple[StateRecord, list[Record], asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None
        #: Fenced: another poller owns the partition; only a new claim may replace us.
        self.failed: BaseException | None = None
        #: The producer could not even abort (a broker restart): replaced before next use.
        self.broken: BaseException | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            **client_options(self.store.config, self.store.bootstrap),
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            compression_type="gzip",
            max_request_size=4 * 1024 * 1024,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            client_id=f"newswire-poller-{self.partition}",
        )
        # init_transactions: fences the previous owner
        await start_client(self.producer, self.store.bootstrap)

    async def commit(self, state: StateRecord, articles: list[Record]) -> None:
        if self.failed is not None:
            raise self.failed
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((state, articles, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"commit:{self.partition}")
        await future

    def _next_batch(self) -> list[tuple[StateRecord, list[Record], asyncio.Future[None]]]:
        batch: list[tuple[StateRecord, list[Record], asyncio.Future[None]]] = []
        size = 0
        while self.pending and (
            not batch or size + 1 + len(self.pending[0][1]) <= MAX_TRANSACTION_RECORDS
        ):
            item = self.pending.pop(0)
            batch.append(item)
            size += 1 + len(item[1])
        return batch

    async def _run(self) -> None:
        config = self.store.config
        while self.pending:
            batch = self._next_batch()
            try:
                if self.failed is not None:
                    raise self.failed
                await self.producer.begin_transaction()
                sent = []
                for (key, value), articles, _ in batch:
                    for article_key, article_value in articles:
                        sent.append(
                            await self.producer.send(
                                self.store.raw_topic, value=article_value, key=article_key
                            )
                        )
                    sent.append(
                        await self.producer.send(
                            config.topic_poller_state,
                            value=value,
                            key=key,
                            partition=self.partition,
                        )
                    )
                for future in sent:
                    await future
                await self.producer.commit_transaction()
            except Exception as exc:
                if isinstance(exc, ProducerFenced):
                    # Another poller owns the partition now: nothing of ours may land.
                    self.failed = exc
                    log.warning("poller.fenced", partition=self.partition)
                else:
                    try:
                        await self.producer.abort_transaction()
                    except Exception as abort_exc:
                        self.broken = abort_exc
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def stop(self) -> None:
        if self.task is not None:
            if self.broken is not None:
                self.task.cancel()  # stuck on a broker that went away: nothing to wait for
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, STOP_TIMEOUT)
        if self.producer is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.producer.stop(), STOP_TIMEOUT)
            self.producer = None


class AtomicKafkaStateStore(KafkaStateStore):
    """Kafka state with the articles of a poll published in the same transaction.

    ``commit(state, articles)`` writes the new articles to the raw topic and the feed's
    state record to the state topic in one Kafka transaction (one transactional producer
    per state partition, batching concurrent commits), so read_committed readers see an
    item if and only if the state that remembers it as published is there too: a poller
    killed at any moment leaves no item that the next owner publishes again, and loses
    none. ``claim`` (on partition assignment) fences the previous owner of the partitions
    before their state is loaded; ``release`` drops the producers of partitions given up.
    """

    atomic = True

    def __init__(
        self,
        bootstrap_servers: str,
        config: Settings,
        raw_topic: str,
        *,
        prefix: str | None = None,
    ) -> None:
        super().__init__(bootstrap_servers, config)
        self.raw_topic = raw_topic
        # Coordinated pollers share the prefix (so a partition's next owner fences its
        # last one); an uncoordinated run (``poll --once``) gets its own.
        self._coordinated = prefix is not None
        self.prefix = prefix or f"{config.poller_group}-once-{uuid.uuid4().hex[:8]}"
        self._committers: dict[int, _PartitionCommitter] = {}
        self._claim_lock = asyncio.Lock()

    async def claim(self, partitions: Iterable[int]) -> None:
        """Start (and so fence any other holder of) the producers of ``partitions``."""
        async with self._claim_lock:
            # A fenced or broken committer is replaced when its partition is ours again.
            stale = [
                self._committers.pop(p)
                for p in partitions
                if p in self._committers
                and (self._committers[p].failed or self._committers[p].broken)
            ]
            await asyncio.gather(*(c.stop() for c in stale))
            wanted = [p for p in partitions if p not in self._committers]
            committers = [_PartitionCommitter(self, p, f"{self.prefix}-{p}") for p in wanted]
            await asyncio.gather(*(c.start() for c in committers))
            for committer in committers:
                self._committers[committer.partition] = committer

    async def release(self, partitions: Iterable[int]) -> None:
        async with self._claim_lock:
            gone = [self._committers.pop(p) for p in list(partitions) if p in self._committers]
        await asyncio.gather(*(c.stop() for c in gone))

    @property
    def claimed(self) -> set[int]:
        return set(self._committers)

    async def commit(self, state: FeedState, articles: Iterable[tuple[str, bytes]]) -> None:
        """Publish ``articles`` ((id, JSON value) pairs) and save ``state``, atomically."""
        partition = partition_for(state.key, self.config.poller_partitions)
        committer = self._committers.get(partition)
        if committer is not None and committer.broken is not None:
            # Still ours (not fenced), but its producer died with the broker: a new one
            # with the same transactional id takes over (and aborts what was left open).
            log.warning("poller.committer_replaced", partition=partition)
            await self.claim([partition])
            committer = self._committers[partition]
        if committer is None:
            if self._coordinated:
                # Claiming here would fence the poller that owns the partition now.
                raise RuntimeError(f"state partition {partition} is not assigned to this poller")
            await self.claim([partition])
            committer = self._committers[partition]
        record = (state.key.encode("utf-8"), state.to_json())
        timeout = self.config.poll_timeout
        try:
            await asyncio.wait_for(
                committer.commit(record, [(k.encode("utf-8"), v) for k, v in articles]), timeout
            )
        except TimeoutError:
            # The broker does not answer. The transaction may still be open: the committer
            # is replaced before the next commit, and its successor (same transactional id)
            # aborts it, so a late commit can never land beside the restored state.
            committer.broken = KafkaUnavailableError(self.bootstrap, "commit timed out")
            raise committer.broken from None

    async def save(self, state: FeedState) -> None:
        await self.commit(state, ())

    async def forget(self, keys: Iterable[str]) -> None:
        """Tombstone the state of ``keys`` through the transactional producer of their
        partition (the owner's, so a fenced poller cannot delete what it no longer owns)."""
        for key in keys:
            partition = partition_for(key, self.config.poller_partitions)
            committer = self._committers.get(partition)
            if committer is None:
                if self._coordinated:
                    continue  # not ours: its owner tombstones it
                await self.claim([partition])
                committer = self._committers[partition]
            await committer.commit((key.encode("utf-8"), None), [])

    async def close(self) -> None:
        await self.release(list(self._committers))
        await super().close()


__all__ = [
    "AtomicKafkaStateStore",
    "KafkaStateStore",
    "ensure_poller_topics",
]

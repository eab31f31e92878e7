"""Poller configuration and poller state kept in Kafka.

State of a feed (ETag, Last-Modified, body hash, schedule, failures, ids published) is one
JSON record in the compacted topic ``newswire.poller.state``, keyed by the feed key and
written to partition ``partition_for(key)``: the same partition number as the feed's
partition of the ``newswire.feeds`` assignment topic, so a poller that is assigned
partitions P reads exactly the state partitions P.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import structlog

from pipeline.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PollerConfig:
    """The poller's settings, a flat copy of the poller fields of :class:`Settings`.

    Tests and the benchmark build one directly; ``from_settings`` copies the fields of the
    same name from a :class:`Settings` (itself read from ``NEWSWIRE_*``)."""

    allow_private_feeds: bool = False
    poll_min_interval: float = 60.0
    poll_max_interval: float = 6 * 3600.0
    poll_backoff_base: float = 60.0
    poll_backoff_cap: float = 24 * 3600.0
    poll_concurrency: int = 64
    poll_per_host: int = 2
    poll_timeout: float = 30.0
    poll_connect_timeout: float = 10.0
    poll_max_bytes: int = 10 * 1024 * 1024
    poll_max_redirects: int = 5
    poll_parse_workers: int = 0  # 0 = one per CPU
    poll_seen_ids: int = 2000
    poller_metrics_host: str = "127.0.0.1"
    poller_metrics_port: int = 9108  # 0 = no metrics/health server
    topic_poller_state: str = "newswire.poller.state"
    topic_feeds: str = "newswire.feeds"
    poller_group: str = "newswire-poller"
    poller_partitions: int = 16
    poller_session_timeout_ms: int = 10_000
    # from Settings
    user_agent: str = "Newswire/0.1 (+https://github.com/newswire/newswire)"
    poll_interval: float = 900.0
    max_body_chars: int = 200_000

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> PollerConfig:
        source = settings if settings is not None else Settings()
        values = {f.name: getattr(source, f.name) for f in fields(cls)}
        values.update(overrides)
        return cls(**values)


def partition_for(key: str, partitions: int) -> int:
    """The partition (of both poller topics) a feed key belongs to."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % partitions


@dataclass(slots=True)
class FeedState:
    """What the poller remembers about one feed."""

    key: str
    url: str  # the configured URL
    fetch_url: str | None = None  # after a permanent redirect
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    interval: float | None = None  # current adaptive interval, seconds
    next_poll_at: float = 0.0  # unix time
    last_poll_at: float | None = None
    last_change_at: float | None = None
    last_status: int | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    new_items: int = 0  # in the last poll
    total_items: int = 0
    seen_ids: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        # Every field is a JSON scalar or a list of strings: no deep copy (asdict) needed.
        values = {name: getattr(self, name) for name in _STATE_FIELDS}
        return json.dumps(values, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> FeedState:
        raw = json.loads(data)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def remember(self, ids: Iterable[str], limit: int) -> None:
        """Add published ids, keeping the most recent ``limit``."""
        seen = dict.fromkeys(self.seen_ids)
        for ident in ids:
            seen.pop(ident, None)
            seen[ident] = None
        self.seen_ids = list(seen)[-limit:]


_STATE_FIELDS = tuple(f.name for f in fields(FeedState))


class StateStore(Protocol):
    """Where poller state lives (Kafka in production, memory in unit tests)."""

    async def load(self, partitions: Iterable[int] | None = None) -> dict[str, FeedState]: ...

    async def save(self, state: FeedState) -> None: ...

    async def close(self) -> None: ...


class MemoryStateStore:
    """State in a dict (unit tests, dry runs)."""

    def __init__(self, partitions: int = 16) -> None:
        self.states: dict[str, FeedState] = {}
        self.partitions = partitions
        self.saves = 0

    async def load(self, partitions: Iterable[int] | None = None) -> dict[str, FeedState]:
        wanted = None if partitions is None else set(partitions)
        return {
            k: FeedState.from_json(v.to_json())
            for k, v in self.states.items()
            if wanted is None or partition_for(k, self.partitions) in wanted
        }

    async def save(self, state: FeedState) -> None:
        self.states[state.key] = FeedState.from_json(state.to_json())
        self.saves += 1

    async def close(self) -> None:
        return None


async def topic_partitions(consumer: Any, topic: str) -> set[int]:
    """The partition numbers of ``topic`` (fresh metadata; empty if it does not exist).

    ``consumer.topics()`` fetches metadata without updating the consumer's own view, so
    ``partitions_for_topic`` stays empty for topics never subscribed to."""
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


class KafkaStateStore:
    """State records in a compacted Kafka topic; ``load`` reads partitions to their end."""

    def __init__(self, bootstrap_servers: str, config: PollerConfig, producer: Any = None) -> None:
        self.bootstrap = bootstrap_servers
        self.config = config
        self._producer = producer
        self._own_producer = producer is None
        self._lock = asyncio.Lock()

    async def _get_producer(self) -> Any:
        async with self._lock:
            if self._producer is None:
                from aiokafka import AIOKafkaProducer

                self._producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    max_request_size=4 * 1024 * 1024,
                    client_id="newswire-poller-state",
                )
                await self._producer.start()
            return self._producer

    async def load(self, partitions: Iterable[int] | None = None) -> dict[str, FeedState]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = self.config.topic_poller_state
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        await consumer.start()
        states: dict[str, FeedState] = {}
        try:
            available = await topic_partitions(consumer, topic)
            wanted = sorted(available if partitions is None else set(partitions) & available)
            if not wanted:
                return states
            tps = [TopicPartition(topic, p) for p in wanted]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        key = record.key.decode("utf-8") if record.key else None
                        if key is None:
                            continue
                        if record.value is None:  # tombstone: feed removed
                            states.pop(key, None)
                            continue
                        try:
                            states[key] = FeedState.from_json(record.value)
                        except (ValueError, TypeError) as exc:
                            log.warning("poller.state_unreadable", key=key, error=str(exc))
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
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

    async def close(self) -> None:
        if self._producer is not None and self._own_producer:
            await self._producer.stop()
            self._producer = None


#: Records a transaction of the atomic store may carry at most (a batch is split beyond).
MAX_TRANSACTION_RECORDS = 2000
#: An open transaction of a dead poller blocks read_committed readers at most this long
#: when nobody fences it (the next owner of the partition fences it at once).
TRANSACTION_TIMEOUT_MS = 60_000

Record = tuple[bytes, bytes]  # (key, value)


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
        self.pending: list[tuple[Record, list[Record], asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.store.bootstrap,
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            compression_type="gzip",
            max_request_size=4 * 1024 * 1024,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            client_id=f"newswire-poller-{self.partition}",
        )
        await self.producer.start()  # init_transactions: fences the previous owner

    async def commit(self, state: Record, articles: list[Record]) -> None:
        if self.failed is not None:
            raise self.failed
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((state, articles, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"commit:{self.partition}")
        await future

    def _next_batch(self) -> list[tuple[Record, list[Record], asyncio.Future[None]]]:
        batch: list[tuple[Record, list[Record], asyncio.Future[None]]] = []
        size = 0
        while self.pending and (
            not batch or size + 1 + len(self.pending[0][1]) <= MAX_TRANSACTION_RECORDS
        ):
            item = self.pending.pop(0)
            batch.append(item)
            size += 1 + len(item[1])
        return batch

    async def _run(self) -> None:
        from aiokafka.errors import ProducerFenced

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
                    with contextlib.suppress(Exception):
                        await self.producer.abort_transaction()
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def stop(self) -> None:
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
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
        config: PollerConfig,
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
        if committer is None:
            if self._coordinated:
                # Claiming here would fence the poller that owns the partition now.
                raise RuntimeError(f"state partition {partition} is not assigned to this poller")
            await self.claim([partition])
            committer = self._committers[partition]
        record = (state.key.encode("utf-8"), state.to_json())
        await committer.commit(record, [(k.encode("utf-8"), v) for k, v in articles])

    async def save(self, state: FeedState) -> None:
        await self.commit(state, ())

    async def close(self) -> None:
        await self.release(list(self._committers))
        await super().close()


async def ensure_poller_topics(bootstrap_servers: str, config: PollerConfig) -> list[str]:
    """Create the compacted state topic and the assignment topic if missing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        if config.topic_poller_state not in existing:
            wanted.append(
                NewTopic(
                    config.topic_poller_state,
                    num_partitions=config.poller_partitions,
                    replication_factor=1,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "min.cleanable.dirty.ratio": "0.1",
                        "segment.ms": "3600000",
                    },
                )
            )
        if config.topic_feeds not in existing:
            wanted.append(
                NewTopic(
                    config.topic_feeds,
                    num_partitions=config.poller_partitions,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
            )
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("poller.topics_created", topics=[t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        await admin.close()


__all__ = [
    "AtomicKafkaStateStore",
    "FeedState",
    "KafkaStateStore",
    "MemoryStateStore",
    "PollerConfig",
    "StateStore",
    "ensure_poller_topics",
    "partition_for",
]

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
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import structlog

from pipeline.settings import Settings

log = structlog.get_logger(__name__)


def _env(name: str, default: Any, settings: Settings | None) -> Any:
    """A setting from Settings if it has the field, else ``NEWSWIRE_<NAME>``, else default."""
    if settings is not None and name in type(settings).model_fields:
        return getattr(settings, name)
    raw = os.environ.get(f"NEWSWIRE_{name.upper()}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


@dataclass(frozen=True, slots=True)
class PollerConfig:
    """Poller settings not (yet) in :class:`Settings`; each reads ``NEWSWIRE_<FIELD>``."""

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
        values = {f.name: _env(f.name, f.default, settings) for f in fields(cls)}
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
        return json.dumps(asdict(self), separators=(",", ":")).encode("utf-8")

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
    "FeedState",
    "KafkaStateStore",
    "MemoryStateStore",
    "PollerConfig",
    "StateStore",
    "ensure_poller_topics",
    "partition_for",
]

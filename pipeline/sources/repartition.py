"""Moving the poller's feed state when ``NEWSWIRE_POLLER_PARTITIONS`` grows.

A feed's partition (of the feeds and the state topic) is ``partition_for(key, count)``, so a
new count moves most feeds. :func:`migrate_poller_state` rewrites every live state record
whose partition changes into its new partition, then tombstones the old copy (every copy is
written before any old one is deleted, so an interruption loses nothing and running it again
finishes the job). Pollers must be stopped meanwhile and restarted with the new count (a
poller whose count differs from the feeds topic's refuses to start).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.errors import ConfigError
from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.compacted import read_to_end
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import topic_partitions
from pipeline.settings import Settings
from pipeline.sources.state import partition_for

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StateRecord:
    """The newest record of one key in one partition of the state topic."""

    partition: int
    offset: int
    value: bytes | None


def state_moves(
    records: Mapping[str, Iterable[StateRecord]], partitions: int
) -> tuple[dict[str, tuple[int, bytes]], list[tuple[str, int]]]:
    """What the state topic needs for ``partitions``: (writes, tombstones).

    ``records`` are each key's newest record per partition. A key whose right partition
    (``partition_for(key, partitions)``) already has its live record keeps it; otherwise a
    live copy elsewhere (the one with the highest offset) is written there. Every live copy
    outside the right partition is tombstoned (running it again finishes an interrupted one).
    """
    writes: dict[str, tuple[int, bytes]] = {}
    tombstones: list[tuple[str, int]] = []
    for key, copies in records.items():
        right = partition_for(key, partitions)
        live = [c for c in copies if c.value is not None]
        if not live:
            continue
        if not any(c.partition == right for c in live):
            newest = max(live, key=lambda c: c.offset)
            if newest.value is not None:
                writes[key] = (right, newest.value)
        tombstones.extend((key, c.partition) for c in live if c.partition != right)
    return writes, tombstones


async def migrate_poller_state(settings: Settings, partitions: int) -> tuple[int, int]:
    """Move every feed's state to ``partition_for(key, partitions)``; returns (records
    moved, old copies tombstoned). The state topic must already have that many partitions."""
    servers = bootstrap(settings)
    topic = settings.topic_poller_state
    consumer = AIOKafkaConsumer(
        **client_options(settings, servers),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await start_client(consumer, servers)
    newest: dict[str, dict[int, StateRecord]] = {}

    def apply(record: Any) -> None:
        if record.key is None:
            return
        key = record.key.decode("utf-8")
        newest.setdefault(key, {})[record.partition] = StateRecord(
            record.partition, record.offset, record.value
        )

    try:
        found = sorted(await topic_partitions(consumer, topic))
        if found and len(found) < partitions:
            raise ConfigError(
                f"topic {topic} has {len(found)} partitions, fewer than {partitions}: "
                "add partitions before moving the state"
            )
        if found:
            await read_to_end(consumer, [TopicPartition(topic, p) for p in found], apply)
    finally:
        await consumer.stop()
    # A key has live copies in two partitions only after an interrupted migration, and
    # both hold the same value (pollers are stopped meanwhile).
    writes, tombstones = state_moves({k: v.values() for k, v in newest.items()}, partitions)
    if not writes and not tombstones:
        return 0, 0
    producer = AIOKafkaProducer(
        **client_options(settings, servers),
        acks="all",
        enable_idempotence=True,
        max_request_size=4 * 1024 * 1024,
        client_id="newswire-setup-partitions",
    )
    await start_client(producer, servers)
    try:
        # every copy is written before any old one is deleted: an interruption loses nothing
        futures = [
            await producer.send(topic, key=key.encode(), value=value, partition=partition)
            for key, (partition, value) in writes.items()
        ]
        for future in futures:
            await future
        futures = [
            await producer.send(topic, key=key.encode(), value=None, partition=partition)
            for key, partition in tombstones
        ]
        for future in futures:
            await future
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
    log.info(
        "poller.state_moved", partitions=partitions, moved=len(writes), tombstoned=len(tombstones)
    )
    return len(writes), len(tombstones)


__all__ = ["StateRecord", "migrate_poller_state", "state_moves"]

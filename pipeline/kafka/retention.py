"""Offsets that fell out of retention: found, never skipped silently.

A consumer group whose committed offset of a partition is below the partition's first
offset (the records between were deleted by retention while the worker was down or
stalled) would be reset by the client to the earliest record, skipping the gap without
a trace. The worker checks its partitions when they are assigned (:func:`find_gaps`) and
stops those with a gap: it logs which records are gone, counts them in a metric and
reports them on ``/health``. The README's recovery says how to go on (replay the gap from
the feeds or a snapshot, then move the group's offset past it on purpose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.security import client_options
from pipeline.settings import Settings


@dataclass(frozen=True)
class Gap:
    """A partition whose committed position was deleted by retention."""

    topic: str
    partition: int
    committed: int
    earliest: int

    @property
    def lost(self) -> int:
        """Records between the committed offset and the first one left (gone)."""
        return self.earliest - self.committed

    def as_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "earliest": self.earliest,
            "lost": self.lost,
        }


def find_gaps(
    committed: Mapping[TopicPartition, int | None], earliest: Mapping[TopicPartition, int]
) -> list[Gap]:
    """The partitions whose committed offset is before the first offset still kept. A
    partition never committed (a new group) has no gap: it starts at the earliest."""
    gaps = []
    for tp, offset in sorted(committed.items()):
        first = earliest.get(tp)
        if offset is not None and first is not None and offset < first:
            gaps.append(Gap(tp.topic, tp.partition, offset, first))
    return gaps


async def group_gaps(
    settings: Settings, group: str, partitions: Iterable[TopicPartition]
) -> list[Gap]:
    """The gaps of ``group`` on ``partitions`` (committed offsets against the earliest
    offsets, read by a consumer that joins no group)."""
    tps = sorted(set(partitions))
    if not tps:
        return []
    servers = bootstrap(settings)
    consumer = AIOKafkaConsumer(
        **client_options(settings, servers), group_id=group, enable_auto_commit=False
    )
    await start_client(consumer, servers)
    try:
        committed = {tp: await consumer.committed(tp) for tp in tps}
        earliest = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return find_gaps(committed, earliest)


__all__ = ["Gap", "find_gaps", "group_gaps"]

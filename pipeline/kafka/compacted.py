"""Compacted topics: read one to its end, or only its recent tail.

A compacted topic keeps the latest record per key, so reading it from the beginning to
the end offsets it had when the reading started rebuilds the state it stores: the poller's
feed state is loaded that way (:func:`read_to_end`). The worker's story table is bounded
instead (:mod:`pipeline.kafka.stories`), so it reads only the tail it can hold
(:func:`read_tail`): the records of the story window, at most its capacity, whatever the
topic's history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import TopicPartition


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


async def read_tail(
    consumer: Any,
    partitions: Sequence[TopicPartition],
    apply: Callable[[Any], None],
    *,
    limit_per_partition: int,
    since_ms: int | None = None,
    timeout_ms: int = 1000,
) -> int:
    """Assign ``partitions`` to ``consumer`` and ``apply`` only their recent records: in
    each partition, from the later of the last ``limit_per_partition`` offsets and the
    first record at or after ``since_ms`` (``offsets_for_times``), up to the end offsets
    they had when called. The time and work are bounded by the limit, not by the topic's
    history. Returns the number of records applied (a few more than the limit when
    records arrive meanwhile: they are applied too, the consumer's position moves on)."""
    partitions = list(partitions)
    consumer.assign(partitions)
    end = await consumer.end_offsets(partitions)
    begin = await consumer.beginning_offsets(partitions)
    start = {tp: max(begin[tp], end[tp] - limit_per_partition) for tp in partitions}
    if since_ms is not None:
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            hit = found.get(tp)
            start[tp] = max(start[tp], hit.offset if hit is not None else end[tp])
    for tp in partitions:
        consumer.seek(tp, start[tp])
    remaining = {tp for tp in partitions if start[tp] < end[tp]}
    applied = 0
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=timeout_ms)
        for records in batch.values():
            for record in records:
                apply(record)
                applied += 1
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
    return applied


__all__ = ["read_tail", "read_to_end"]

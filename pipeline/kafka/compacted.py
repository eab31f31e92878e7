"""Compacted topics: read one to its end.

A compacted topic keeps the latest record per key, so reading it from the beginning to
the end offsets it had when the reading started rebuilds the state it stores: the poller's
feed state is loaded that way (:func:`read_to_end`).
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


__all__ = ["read_to_end"]

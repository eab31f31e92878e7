"""The worker's guard against offsets out of retention (:mod:`pipeline.kafka.retention`).

When partitions are assigned (Faust has paused them all by then), their committed offsets
are compared with the first offsets still kept. A partition with a gap stays paused: its
records are not read, its committed offset does not move (so the gap stays visible on
restart), and it is reported in the log (``worker.offset_out_of_retention``), the
``newswire_partitions_stopped`` gauge and ``/health/``. Faust resumes every assigned
partition after a rebalance, so the consumer's ``resume_partitions`` is wrapped to leave
the stopped ones out, and the ones still being checked: Faust's recovery may resume them
before the check (a few Kafka requests) is done, and a partition read in the meantime
would be read past its gap. Those held back during the check are resumed after it unless
they have a gap.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from aiokafka import TopicPartition

from pipeline import metrics
from pipeline.kafka.retention import Gap, group_gaps
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

GapFinder = Callable[[Settings, str, Iterable[TopicPartition]], Any]


class RetentionGuard:
    """Which partitions this worker stopped, and why."""

    def __init__(self, settings: Settings, find: GapFinder = group_gaps) -> None:
        self.settings = settings
        self.find = find
        self.stopped: dict[tuple[str, int], Gap] = {}
        #: Partitions whose check is in progress, and those Faust asked to resume meanwhile.
        self.checking: Counter[tuple[str, int]] = Counter()  # checks in progress per key
        self.withheld: set[tuple[str, int]] = set()
        self._wrapped: Any = None
        self._resume: Callable[[Iterable[Any]], None] | None = None
        #: Set while no check is under way; the agents wait for it before filtering a batch,
        #: so a batch fetched before the pause cannot carry records of a partition about to
        #: be stopped (defence in depth beside the resume wrapper).
        self.checked = asyncio.Event()
        self.checked.set()

    async def on_assigned(self, consumer: Any, assigned: Iterable[Any]) -> list[Gap]:
        """Check the newly assigned partitions; keep the ones with a gap paused."""
        assigned = list(assigned)
        tps = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
        for key in [k for k in self.stopped if TopicPartition(*k) not in tps]:
            del self.stopped[key]  # no longer ours: the new owner reports it
            metrics.PARTITIONS_STOPPED.labels(key[0], str(key[1])).set(0)
        checking = {(tp.topic, tp.partition) for tp in tps}
        self.checked.clear()
        self._guard(consumer)  # before the first await: Faust may resume them meanwhile
        self.checking.update(checking)
        gaps: list[Gap] = []
        try:
            gaps = await self.find(self.settings, self.settings.worker_id, tps)
            for gap in gaps:
                self.stopped[(gap.topic, gap.partition)] = gap
                metrics.PARTITIONS_STOPPED.labels(gap.topic, str(gap.partition)).set(1)
                log.error(
                    "worker.offset_out_of_retention",
                    **gap.as_json(),
                    action="partition stopped: its committed offset was deleted by retention",
                    remedy="README, 'Recovery: offsets out of retention'",
                )
            if self.stopped:
                consumer.pause_partitions([tp for tp in tps if self.is_stopped(tp)])
        finally:  # also when the check failed: what Faust resumed meanwhile is resumed
            self.checking.subtract(checking)
            self.checking = +self.checking  # drop the keys at zero
            done = {key for key in checking if key not in self.checking}
            held = [tp for tp in assigned if (tp.topic, tp.partition) in self.withheld & done]
            self.withheld -= done
            resume = [tp for tp in held if not self.is_stopped(tp)]
            if resume and self._resume is not None:
                self._resume(resume)
            if not self.checking:
                self.checked.set()
        return gaps

    def is_stopped(self, tp: Any) -> bool:
        return (tp.topic, tp.partition) in self.stopped

    def _guard(self, consumer: Any) -> None:
        """Wrap ``consumer.resume_partitions`` (once) to never resume a stopped partition,
        nor one being checked (remembered, and resumed after its check)."""
        if self._wrapped is consumer:
            return
        original = consumer.resume_partitions

        def resume_partitions(tps: Iterable[Any]) -> None:
            asked = set(tps)
            held = {tp for tp in asked if (tp.topic, tp.partition) in self.checking}
            self.withheld |= {(tp.topic, tp.partition) for tp in held}
            original({tp for tp in asked - held if not self.is_stopped(tp)})

        consumer.resume_partitions = resume_partitions
        self._wrapped = consumer
        self._resume = original

    def health(self) -> dict[str, Any]:
        """The ``/health/`` answer's part: the stopped partitions."""
        return {
            "status": "degraded" if self.stopped else "ok",
            "partitions_stopped": [gap.as_json() for gap in self.stopped.values()],
        }


__all__ = ["RetentionGuard"]

"""Consumer-group membership of a poller, without ever starving it.

Pollers split the feeds through Kafka consumer-group assignment of the ``newswire.feeds``
topic (:mod:`pipeline.sources.coordination`). The rebalance callbacks return quickly:

- *revoked*: stop starting polls, finish the in-flight polls of the partitions given up
  (so no feed is polled by two pollers at once; bounded by the poll timeout) and cancel a
  state load still running for them;
- *assigned*: record the assignment and start a background task that fences the previous
  owners (atomic store), loads the state of the assigned partitions (aiokafka's eager
  protocol revokes every partition first, so all of them: another poller may have
  written them meanwhile), then schedules the feeds. A newer assignment cancels an older
  load (fencing by generation), so a stale load never schedules feeds no longer ours.

The poller's loop keeps calling :meth:`GroupMembership.poll` (so heartbeats and
``max.poll.interval`` stay satisfied) while the state loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener

from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import check_feeds_topic
from pipeline.settings import Settings
from pipeline.sources.coordination import AtomicKafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.state import FeedState, partition_for

log = structlog.get_logger(__name__)
#: Wait before a failed state load is tried again (seconds).
LOAD_RETRY_SECONDS = 5.0
#: Least time between two getmany calls of :meth:`GroupMembership.poll` (seconds).
GROUP_POLL_SECONDS = 0.5


class GroupMember(Protocol):
    """What membership drives (the poller), declared here so that this module does not
    depend on the poller, which depends on it."""

    settings: Settings
    feeds: dict[str, FeedConfig]
    states: dict[str, FeedState]
    assigned: set[str] | None
    held_partitions: set[int] | None
    _atomic: AtomicKafkaStateStore | None

    async def load_state(self, partitions: Iterable[int] | None = None) -> None: ...

    async def reschedule_all_async(self) -> None: ...

    async def _drain(self, keys: Iterable[str] | None = None) -> None: ...


class GroupMembership:
    """Consumer-group membership on the assignment topic; see the module docstring."""

    def __init__(self, poller: GroupMember) -> None:
        self.poller = poller
        self.consumer: Any = None
        self.ready = False
        self.generation = 0
        self.held: set[int] = set()  # partitions whose state is in memory and ours
        self.loader: asyncio.Task[None] | None = None
        #: Seconds from the last assignment to polling (for /health and benchmarks).
        self.last_take_seconds: float | None = None
        self._polled_at = 0.0  # monotonic time of the last getmany

    def _partition_of(self, key: str) -> int:
        return partition_for(key, self.poller.settings.poller_partitions)

    async def _cancel_loader(self) -> None:
        if self.loader is not None and not self.loader.done():
            self.loader.cancel()
            with contextlib.suppress(BaseException):
                await self.loader
        self.loader = None

    async def revoked(self, lost: set[int]) -> None:
        poller = self.poller
        self.ready = False
        await self._cancel_loader()
        keys = [k for k in list(poller.assigned or ()) if self._partition_of(k) in lost]
        # Finish in-flight polls before another poller may take these feeds.
        await poller._drain(keys)
        poller.assigned = (poller.assigned or set()) - set(keys)
        self.held -= lost
        poller.held_partitions = set(self.held)
        log.info("poller.partitions_revoked", partitions=sorted(lost), feeds=len(keys))

    async def assigned(self, parts: set[int]) -> None:
        await self._cancel_loader()
        self.generation += 1
        self.loader = asyncio.create_task(
            self._take(parts, self.generation), name=f"take-partitions:{self.generation}"
        )

    async def _take(self, parts: set[int], generation: int) -> None:
        """Fence, load, schedule; retried until done or superseded."""
        poller = self.poller
        started = time.monotonic()
        fresh = parts - self.held  # empty ``held`` under the eager protocol: all of them
        while True:
            try:
                atomic = poller._atomic
                if atomic is not None:
                    # Fence the previous owners (aborting what a dead one left open)
                    # before reading the state they wrote.
                    await atomic.release(atomic.claimed - parts)
                    await atomic.claim(parts)
                if fresh:
                    await poller.load_state(fresh)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("poller.take_failed", partitions=sorted(parts), error=repr(exc)[:300])
                await asyncio.sleep(LOAD_RETRY_SECONDS)
        if generation != self.generation:
            return
        poller.assigned = {k for k in poller.feeds if self._partition_of(k) in parts}
        for key in [k for k in poller.states if self._partition_of(k) not in parts]:
            del poller.states[key]  # another poller's now: forget it
        self.held = set(parts)
        poller.held_partitions = set(parts)
        await poller.reschedule_all_async()
        self.ready = True
        self.last_take_seconds = time.monotonic() - started
        log.info(
            "poller.partitions_assigned",
            partitions=sorted(parts),
            loaded=sorted(fresh),
            feeds=len(poller.assigned),
            seconds=round(self.last_take_seconds, 2),
        )

    async def start(self) -> None:
        poller = self.poller
        config = poller.settings
        membership = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await membership.revoked({tp.partition for tp in revoked})

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await membership.assigned({tp.partition for tp in assigned})

        servers = bootstrap(config)
        await ensure_poller_topics(servers, config)
        await check_feeds_topic(config)  # the feed -> partition map needs the same count
        poller.assigned = set()
        self.consumer = AIOKafkaConsumer(
            **client_options(config, servers),
            group_id=config.poller_group,
            enable_auto_commit=False,
            session_timeout_ms=config.poller_session_timeout_ms,
            heartbeat_interval_ms=max(500, config.poller_session_timeout_ms // 4),
            max_poll_interval_ms=300_000,
            rebalance_timeout_ms=max(60_000, int(config.poll_timeout * 2000)),
        )
        self.consumer.subscribe([config.topic_feeds], listener=Listener())
        await start_client(self.consumer, servers)

    async def poll(self) -> None:
        """Call getmany now and then (records are not used): ``max.poll.interval`` is
        minutes and heartbeats have aiokafka's own task, while the poller's loop turns at
        every poll's end (hundreds of times a second), so most calls return at once."""
        now = time.monotonic()
        if now - self._polled_at < GROUP_POLL_SECONDS:
            return
        self._polled_at = now
        await self.consumer.getmany(timeout_ms=10, max_records=1)

    async def stop(self) -> None:
        await self._cancel_loader()
        if self.consumer is not None:
            await self.consumer.stop()


__all__ = ["GroupMember", "GroupMembership"]

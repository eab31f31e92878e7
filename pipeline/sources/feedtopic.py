"""The feed list of record: the compacted ``newswire.feeds`` topic.

One record per feed, keyed by the feed key, in partition ``partition_for(key)`` (the same
partitions the pollers' consumer group splits, :mod:`pipeline.sources.membership`): the
value is the feed entry as compact JSON (the fields of :class:`FeedConfig` that differ from
their defaults), a null value (tombstone) removes the feed. ``newswire feeds add / remove
/ import`` write it; pollers read it to its end when they start (200,000 records in a few
seconds: JSON, no YAML) and then follow it, applying each change within
``feeds_follow_seconds``. YAML and OPML files stay import and export formats.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from pipeline.kafka.client import start_client
from pipeline.kafka.compacted import read_to_end
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import topic_partitions
from pipeline.settings import Settings
from pipeline.sources.coordination import ensure_poller_topics
from pipeline.sources.feeds import FeedConfig, FeedEntryError, FeedList, feed_key
from pipeline.sources.state import partition_for

if TYPE_CHECKING:
    from pipeline.sources.poller import Poller

log = structlog.get_logger(__name__)

#: Applies a batch of changes: entries added or changed, keys removed.
ChangeCallback = Callable[[list[FeedConfig], list[str]], Awaitable[None]]


def feed_record(feed: FeedConfig) -> bytes:
    """The record value of a feed entry."""
    data = feed.model_dump(exclude_defaults=True, mode="json")
    data["url"] = feed.url
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def read_feed_record(value: bytes) -> FeedConfig:
    """A feed entry from its record value (validated like a YAML entry)."""
    return FeedConfig.model_validate_json(value)


def _changes(
    latest: dict[bytes, bytes | None],
) -> tuple[list[FeedConfig], list[str], list[FeedEntryError]]:
    upserts: list[FeedConfig] = []
    removed: list[str] = []
    errors: list[FeedEntryError] = []
    for index, (raw_key, value) in enumerate(latest.items()):
        key = raw_key.decode("utf-8", "replace")
        if value is None:
            removed.append(key)
            continue
        try:
            feed = read_feed_record(value)
        except ValidationError as exc:
            errors.append(FeedEntryError(index, key, f"bad record: {exc.errors()[0]['msg']}"))
            continue
        if feed.key != key:
            errors.append(FeedEntryError(index, key, "record key is not the key of its url"))
            continue
        upserts.append(feed)
    return upserts, removed, errors


class FeedTopic:
    """Reads, follows and writes the feed list topic."""

    def __init__(self, bootstrap_servers: str, settings: Settings) -> None:
        self.bootstrap = bootstrap_servers
        self.settings = settings
        self.topic = settings.topic_feeds
        self.positions: dict[TopicPartition, int] = {}

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **client_options(self.settings, self.bootstrap),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )

    async def load(self, partitions: Iterable[int] | None = None) -> FeedList:
        """Every feed of the topic, or of its ``partitions`` only (bad records become
        ``errors``); remembers where it stopped, for :meth:`follow`."""
        consumer = self._consumer()
        await start_client(consumer, self.bootstrap)
        latest: dict[bytes, bytes | None] = {}

        def apply(record: Any) -> None:
            if record.key:
                latest[record.key] = record.value

        try:
            available = await topic_partitions(consumer, self.topic)
            wanted = available if partitions is None else set(partitions) & available
            tps = [TopicPartition(self.topic, p) for p in sorted(wanted)]
            if tps:
                await read_to_end(consumer, tps, apply)
                self.positions = {tp: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()
        upserts, _removed, errors = _changes(latest)
        return FeedList(feeds=upserts, errors=errors)

    async def holds_records(self) -> bool:
        """Whether the topic has ever been written (its end offsets; nothing is read)."""
        consumer = self._consumer()
        await start_client(consumer, self.bootstrap)
        try:
            parts = await topic_partitions(consumer, self.topic)
            ends = await consumer.end_offsets([TopicPartition(self.topic, p) for p in parts])
        finally:
            await consumer.stop()
        return any(ends.values())

    async def follow(
        self, on_change: ChangeCallback, stop: asyncio.Event, every: float = 10.0
    ) -> None:
        """Apply the changes written after :meth:`load` until ``stop`` is set."""
        consumer = self._consumer()
        await start_client(consumer, self.bootstrap)
        try:
            tps = list(self.positions) or [
                TopicPartition(self.topic, p)
                for p in sorted(await topic_partitions(consumer, self.topic))
            ]
            consumer.assign(tps)
            for tp in tps:
                if tp in self.positions:
                    consumer.seek(tp, self.positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=int(every * 1000), max_records=5000)
                latest: dict[bytes, bytes | None] = {}
                for records in batch.values():
                    for record in records:
                        if record.key:
                            latest[record.key] = record.value
                if not latest:
                    continue
                upserts, removed, errors = _changes(latest)
                for error in errors:
                    log.error("feeds.bad_record", topic=self.topic, error=str(error))
                try:
                    await on_change(upserts, removed)
                except Exception as exc:  # a bad change must not stop the poller
                    log.error("feeds.change_failed", error=repr(exc)[:300])
                    continue
                log.info("feeds.changes_applied", changed=len(upserts), removed=len(removed))
        finally:
            await consumer.stop()

    async def _send(self, records: Iterable[tuple[str, bytes | None]]) -> int:
        producer = AIOKafkaProducer(
            **client_options(self.settings, self.bootstrap),
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
            compression_type="gzip",
            client_id="newswire-feeds",
        )
        await start_client(producer, self.bootstrap)
        count = 0
        try:
            futures = []
            for key, value in records:
                futures.append(
                    await producer.send(
                        self.topic,
                        key=key.encode("utf-8"),
                        value=value,
                        partition=partition_for(key, self.settings.poller_partitions),
                    )
                )
                count += 1
            for future in futures:
                await future
        finally:
            await producer.stop()
        return count

    async def write(self, feeds: Iterable[FeedConfig]) -> int:
        """Add or change feeds (one record each); returns how many were written."""
        return await self._send((f.key, feed_record(f)) for f in feeds)

    async def remove(self, urls: Iterable[str]) -> int:
        """Remove feeds by URL (tombstones)."""
        return await self._send((feed_key(u), None) for u in urls)


@dataclass(frozen=True, slots=True)
class TopicChange:
    """What ``feeds add / remove / import`` wrote to the feeds topic."""

    added: list[FeedConfig]
    changed: list[FeedConfig]
    unchanged: list[FeedConfig]
    removed: list[str]
    errors: list[FeedEntryError]

    def as_json(self) -> dict[str, Any]:
        return {
            "added": [f.url for f in self.added],
            "changed": [f.url for f in self.changed],
            "unchanged": len(self.unchanged),
            "removed": self.removed,
            "errors": [str(e) for e in self.errors],
        }


async def put_feeds(
    bootstrap_servers: str, settings: Settings, incoming: FeedList, *, remove: Iterable[str] = ()
) -> TopicChange:
    """Write ``incoming`` entries that are new or differ from the topic's, and tombstone
    the ``remove`` URLs that are listed; the rest is left alone (no rewrite of 200,000
    records for one change)."""
    await ensure_poller_topics(bootstrap_servers, settings)
    topic = FeedTopic(bootstrap_servers, settings)
    current = {f.key: f for f in (await topic.load()).feeds}
    added = [f for f in incoming.feeds if f.key not in current]
    changed = [f for f in incoming.feeds if f.key in current and current[f.key] != f]
    unchanged = [f for f in incoming.feeds if current.get(f.key) == f]
    gone = [url.strip() for url in remove if feed_key(url) in current]
    if added or changed:
        await topic.write([*added, *changed])
    if gone:
        await topic.remove(gone)
    return TopicChange(added, changed, unchanged, gone, list(incoming.errors))


async def apply_to_poller(poller: Poller, upserts: list[FeedConfig], removed: list[str]) -> None:
    """Apply feed list changes to a running poller: new and changed entries are
    (re)scheduled if they are the poller's; removed ones are unscheduled and their state
    tombstoned by their owner. In-flight polls finish first (rescheduled by their end)."""
    now = poller.clock()
    held = poller.held_partitions
    parts = poller.settings.poller_partitions
    for feed in upserts:
        poller.feeds[feed.key] = feed
        if (
            poller.assigned is not None
            and held is not None
            and partition_for(feed.key, parts) in held
        ):
            poller.assigned.add(feed.key)
        if feed.key in poller._in_flight:
            continue
        if poller._mine(feed.key):
            poller.schedule_feed(feed, now)
        elif feed.key in poller.scheduler:
            poller.scheduler.remove(feed.key)
    gone = [k for k in removed if poller.feeds.pop(k, None) is not None]
    owned = [k for k in gone if poller.assigned is None or k in poller.assigned]
    for key in gone:
        if key in poller.scheduler:
            poller.scheduler.remove(key)
        poller.states.pop(key, None)
        if poller.assigned is not None:
            poller.assigned.discard(key)
    if owned:
        await poller.store.forget(owned)
    poller._wakeup.set()


__all__ = [
    "ChangeCallback",
    "FeedTopic",
    "TopicChange",
    "apply_to_poller",
    "feed_record",
    "put_feeds",
    "read_feed_record",
]

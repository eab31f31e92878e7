"""The dead-letter topic: the record written for what failed and why, reading them back,
and sending the originals back once fixed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline import PIPELINE_VERSION, metrics
from pipeline.errors import ConfigError
from pipeline.kafka.client import bootstrap, encode, make_producer, send_all, start_client
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import topic_partitions
from pipeline.models import utcnow
from pipeline.settings import Settings
from pipeline.worker.output import KafkaOutput

log = structlog.get_logger(__name__)


def dlq_record(event_value: bytes | None, reason: str, stage: str, **where: Any) -> dict[str, Any]:
    """A DLQ record: why, where it came from, and the original record untouched."""
    original: Any
    try:
        original = json.loads(event_value) if event_value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        original = (event_value or b"").decode("utf-8", errors="replace")
    return {
        "reason": reason,
        "stage": stage,
        "failed_at": utcnow().isoformat(),
        "pipeline_version": PIPELINE_VERSION,
        **where,
        "original": original,
    }


async def send_dead_letters(output: KafkaOutput, records: Sequence[dict[str, Any]]) -> None:
    """Publish the worker's DLQ records and wait for the broker's acknowledgement (through
    a Kafka outage, as any output of the worker); each is logged and counted."""
    stage = str(records[0]["stage"]) if records else "dlq"
    await output.send(
        stage,
        output.settings.topic_dlq,
        [((r.get("key") or "").encode("utf-8") or None, encode(r)) for r in records],
    )
    for record in records:
        metrics.WORKER_RECORDS.labels(record["stage"], "dlq").inc()
        log.error("dlq.sent", stage=record["stage"], key=record.get("key"), reason=record["reason"])


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record: where it failed, why, and the original record."""

    offset: int
    partition: int
    stage: str
    key: str | None
    reason: str
    failed_at: str | None
    original: Any
    source_topic: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "stage": self.stage,
            "key": self.key,
            "reason": self.reason,
            "failed_at": self.failed_at,
            "source_topic": self.source_topic,
            "original": self.original,
        }


def parse_dead_letter(partition: int, offset: int, value: bytes | None) -> DeadLetter:
    """A DLQ message as a record; anything unreadable is shown, not skipped."""
    try:
        data = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = {"reason": "unreadable DLQ record", "original": (value or b"").decode("latin-1")}
    if not isinstance(data, dict):
        data = {"reason": "unreadable DLQ record", "original": data}
    return DeadLetter(
        offset=offset,
        partition=partition,
        stage=str(data.get("stage", "?")),
        key=data.get("key"),
        reason=str(data.get("reason", "")),
        failed_at=data.get("failed_at"),
        original=data.get("original"),
        source_topic=data.get("topic"),
    )


#: Largest page ``newswire dlq list`` reads (the records of one page are held in memory).
MAX_PAGE = 1000
#: Bytes fetched per request: the consumer buffers at most about this much beyond a page.
_FETCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DeadLetterPage:
    """One page of the DLQ and where the next one starts (``None``: the end was reached)."""

    letters: list[DeadLetter]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "dead_letters": [letter.as_json() for letter in self.letters],
            "next_cursor": self.next_cursor,
        }


def encode_cursor(positions: Mapping[int, int]) -> str:
    """A page cursor: the next offset to read in each partition, ``"0:12,1:40"``."""
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(positions.items()))


def decode_cursor(cursor: str) -> dict[int, int]:
    """The positions of a cursor from :func:`encode_cursor`; a malformed one is a
    :class:`ConfigError` (it comes from the command line)."""
    positions: dict[int, int] = {}
    for part in cursor.split(","):
        partition, sep, offset = part.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ConfigError(f"invalid DLQ cursor {cursor!r}: expected PARTITION:OFFSET,...")
        positions[int(partition)] = int(offset)
    return positions


def page_plan(
    starts: Mapping[int, int], ends: Mapping[int, int], limit: int
) -> list[tuple[int, int, int]]:
    """(partition, first offset, offset to stop before) to read for a page of at most
    ``limit`` records, partitions in order; an upper bound (offsets may be gaps)."""
    plan: list[tuple[int, int, int]] = []
    budget = limit
    for partition in sorted(ends):
        first = max(starts.get(partition, 0), 0)
        stop = ends[partition]
        if first < stop and budget > 0:
            plan.append((partition, first, stop))
            budget -= stop - first
    return plan


async def read_dead_letters_page(
    settings: Settings,
    *,
    limit: int = 50,
    cursor: str | None = None,
    since: datetime | None = None,
) -> DeadLetterPage:
    """One page of the DLQ (no consumer group, no commits): at most ``limit`` records,
    partition by partition in offset order, from ``cursor`` (a previous page's
    ``next_cursor``), else from the first record at or after ``since``, else from the
    beginning. One partition is read at a time with small fetches, so memory stays about
    one page whatever the topic's size; records written after the page started are left
    for a later call."""
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"DLQ page size must be between 1 and {MAX_PAGE}, not {limit}")
    servers = bootstrap(settings)
    consumer = AIOKafkaConsumer(
        **client_options(settings, servers),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=_FETCH_BYTES,
        fetch_max_bytes=_FETCH_BYTES,
    )
    await start_client(consumer, servers)
    try:
        partitions = await topic_partitions(consumer, settings.topic_dlq)
        tps = [TopicPartition(settings.topic_dlq, p) for p in sorted(partitions)]
        if not tps:
            return DeadLetterPage([], None)
        ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
        firsts = await consumer.beginning_offsets(tps)
        starts = {tp.partition: offset for tp, offset in firsts.items()}
        if cursor is not None:
            for partition, offset in decode_cursor(cursor).items():
                if partition in starts:
                    starts[partition] = max(starts[partition], offset)
        elif since is not None:
            stamp = int(since.timestamp() * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(tps, stamp))
            for tp, hit in found.items():
                starts[tp.partition] = hit.offset if hit is not None else ends[tp.partition]
        letters: list[DeadLetter] = []
        positions = dict(starts)
        for partition, first, stop in page_plan(starts, ends, limit):
            if len(letters) >= limit:
                break
            tp = TopicPartition(settings.topic_dlq, partition)
            consumer.assign([tp])
            consumer.seek(tp, first)
            idle = 0
            while len(letters) < limit and positions[partition] < stop and idle < 3:
                batch = await consumer.getmany(
                    tp, timeout_ms=1000, max_records=min(limit - len(letters), 500)
                )
                messages = batch.get(tp, [])
                for message in messages:
                    if message.offset >= stop:  # only gaps were left before the page's end
                        positions[partition] = stop
                        break
                    letters.append(parse_dead_letter(partition, message.offset, message.value))
                    positions[partition] = message.offset + 1
                    if len(letters) >= limit:
                        break
                if messages:
                    idle = 0
                elif await consumer.position(tp) >= stop:  # transaction markers, compaction
                    positions[partition] = stop
                else:
                    idle += 1  # the broker is slow: the cursor resumes here next time
        done = all(positions[p] >= ends[p] for p in ends)
        return DeadLetterPage(letters, None if done else encode_cursor(positions))
    finally:
        await consumer.stop()


async def read_dead_letters(settings: Settings, limit: int = 1000) -> list[DeadLetter]:
    """The first ``limit`` DLQ records (pages of :func:`read_dead_letters_page`)."""
    letters: list[DeadLetter] = []
    cursor: str | None = None
    while len(letters) < limit:
        page = await read_dead_letters_page(
            settings, limit=min(MAX_PAGE, limit - len(letters)), cursor=cursor
        )
        letters.extend(page.letters)
        if page.next_cursor is None or not page.letters:
            break
        cursor = page.next_cursor
    return letters


def replay_target(letter: DeadLetter, settings: Settings) -> str | None:
    """Where a dead letter goes back to: the topic of the stage that refused it."""
    if letter.source_topic:
        return letter.source_topic
    topics = {
        "enrich": settings.topic_raw,
        "sink": settings.topic_enriched,
        "copies": settings.topic_copies,
    }
    return topics.get(letter.stage)


async def replay_dead_letters(
    settings: Settings, letters: list[DeadLetter]
) -> tuple[int, list[DeadLetter]]:
    """Publish the originals back to their topics; returns (sent, not replayable)."""
    by_topic: dict[str, list[tuple[bytes | None, bytes]]] = {}
    skipped: list[DeadLetter] = []
    for letter in letters:
        topic = replay_target(letter, settings)
        if topic is None or letter.original is None:
            skipped.append(letter)
            continue
        value = (
            letter.original.encode("utf-8")
            if isinstance(letter.original, str)
            else json.dumps(letter.original, ensure_ascii=False).encode("utf-8")
        )
        key = letter.key.encode("utf-8") if letter.key else None
        by_topic.setdefault(topic, []).append((key, value))
    producer = make_producer(settings)
    await start_client(producer, bootstrap(settings))
    sent = 0
    try:
        for topic, records in by_topic.items():
            sent += await send_all(producer, topic, records)
    finally:
        await producer.stop()
    return sent, skipped

"""The dead-letter topic: the record written for what failed and why, reading them back,
and sending the originals back once fixed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline import PIPELINE_VERSION
from pipeline.kafka.client import bootstrap, make_producer, send_all, start_client
from pipeline.kafka.security import client_options
from pipeline.models import utcnow
from pipeline.settings import Settings


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


async def read_dead_letters(settings: Settings, limit: int = 1000) -> list[DeadLetter]:
    """The DLQ from its beginning, up to ``limit`` records (no consumer group, no commits)."""
    servers = bootstrap(settings)
    consumer = AIOKafkaConsumer(
        settings.topic_dlq,
        **client_options(settings, servers),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    await start_client(consumer, servers)
    letters: list[DeadLetter] = []
    try:
        while len(letters) < limit:
            batch = await consumer.getmany(timeout_ms=1500, max_records=limit - len(letters))
            if not batch:
                break
            for tp, messages in batch.items():
                letters.extend(parse_dead_letter(tp.partition, m.offset, m.value) for m in messages)
    finally:
        await consumer.stop()
    return sorted(letters, key=lambda d: (d.failed_at or "", d.partition, d.offset))


def replay_target(letter: DeadLetter, settings: Settings) -> str | None:
    """Where a dead letter goes back to: the topic of the stage that refused it."""
    if letter.source_topic:
        return letter.source_topic
    return {"enrich": settings.topic_raw, "sink": settings.topic_enriched}.get(letter.stage)


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

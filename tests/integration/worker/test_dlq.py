"""Reading the dead-letter topic and sending its records back, on the real Kafka."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.kafka.client import encode, make_producer, send_all
from pipeline.kafka.topics import (
    TopicSpec,
    create_missing_topics,
    dlq_spec,
    enforce_topic_configs,
    ensure_topics,
    topic_overrides,
)
from pipeline.settings import Settings
from pipeline.worker.dlq import (
    dlq_record,
    parse_dead_letter,
    read_dead_letters,
    read_dead_letters_page,
    replay_dead_letters,
)

pytestmark = pytest.mark.integration


async def test_list_and_replay_dead_letters(stack: Any, isolated: Any, read_topic: Any) -> None:
    settings = isolated(stack.settings, "dlq")
    await ensure_topics(settings)
    raw_value = json.dumps({"id": "r1", "title": "A"}).encode()
    enriched_value = json.dumps({"id": "e1", "title": "B", "extra": 1}).encode()
    letters = [
        dlq_record(raw_value, "invalid record: x", "enrich", topic=settings.topic_raw, key="r1"),
        dlq_record(enriched_value, "rejected by the index: 400", "sink", key="e1"),
    ]
    producer = make_producer(settings)
    await producer.start()
    try:
        records = [(None, encode(letter)) for letter in letters] + [(None, b"\xff not json")]
        await send_all(producer, settings.topic_dlq, records)
    finally:
        await producer.stop()

    found = await read_dead_letters(settings)
    assert len(found) == 3
    by_key = {letter.key: letter for letter in found}
    assert by_key["r1"].stage == "enrich" and by_key["r1"].reason == "invalid record: x"
    assert by_key["e1"].original == {"id": "e1", "title": "B", "extra": 1}
    assert by_key[None].reason == "unreadable DLQ record"

    sent, skipped = await replay_dead_letters(settings, found)
    assert sent == 2 and [s.key for s in skipped] == [None]
    assert settings.kafka_bootstrap
    raw = await read_topic(settings.kafka_bootstrap, settings.topic_raw, 1, 30)
    enriched = await read_topic(settings.kafka_bootstrap, settings.topic_enriched, 1, 30)
    assert raw == [{"id": "r1", "title": "A"}]
    assert enriched == [{"id": "e1", "title": "B", "extra": 1}]


def test_parse_dead_letter_keeps_unreadable_records_visible() -> None:
    letter = parse_dead_letter(0, 7, b"[1, 2]")
    assert letter.reason == "unreadable DLQ record" and letter.original == [1, 2]
    assert letter.offset == 7


async def _topic_config(settings: Settings, topic: str) -> dict[str, str]:
    assert settings.kafka_bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        return topic_overrides(responses[0].to_object()["resources"][0])
    finally:
        await admin.close()


async def test_dlq_topic_is_created_with_its_own_retention(stack: Any, isolated: Any) -> None:
    settings = isolated(stack.settings, "dlq-retention", dlq_retention_days=30)
    assert settings.topic_dlq in await ensure_topics(settings)
    config = await _topic_config(settings, settings.topic_dlq)
    assert config["retention.ms"] == str(30 * 86_400_000)
    assert config["cleanup.policy"] == "delete"
    # The article topics keep theirs (NEWSWIRE_TOPIC_RETENTION_DAYS), not the broker's 7 days.
    raw = await _topic_config(settings, settings.topic_raw)
    assert raw["retention.ms"] == str(round(settings.topic_retention_days * 86_400_000))


async def test_setup_enforces_the_retention_on_an_existing_dlq_topic(
    stack: Any, isolated: Any, wait_for: Any
) -> None:
    old = isolated(stack.settings, "dlq-alter")
    await create_missing_topics(
        old,
        [TopicSpec(old.topic_dlq, 2, {"retention.ms": "3600000", "max.message.bytes": "2000000"})],
    )

    async def created() -> bool:  # topic creation completes asynchronously in KRaft
        try:
            return (await _topic_config(old, old.topic_dlq)).get("retention.ms") == "3600000"
        except KeyError:
            return False

    await wait_for(created, 30, "the old DLQ topic to be visible", every=0.2)
    settings = old.model_copy(update={"dlq_retention_days": 2.5})
    changed = await enforce_topic_configs(settings, [dlq_spec(settings)])
    assert changed == {
        settings.topic_dlq: {"cleanup.policy": "delete", "retention.ms": str(216_000_000)}
    }
    config = await _topic_config(settings, settings.topic_dlq)
    assert config["retention.ms"] == "216000000"
    assert config["max.message.bytes"] == "2000000"  # the topic's other settings are kept
    assert await enforce_topic_configs(settings, [dlq_spec(settings)]) == {}  # idempotent


async def test_dlq_list_pages_through_300_records_with_bounded_memory(
    stack: Any, isolated: Any
) -> None:
    settings = isolated(stack.settings, "dlq-pages")
    await ensure_topics(settings)
    padding = "x" * 40_000  # 300 records of ~40 KB: 12 MB in the topic
    producer = make_producer(settings)
    await producer.start()
    try:
        records = [
            (
                f"k{n}".encode(),
                encode(
                    dlq_record(
                        json.dumps({"id": f"k{n}", "body": padding}).encode(),
                        f"reason {n}",
                        "enrich",
                        key=f"k{n}",
                    )
                ),
            )
            for n in range(300)
        ]
        await send_all(producer, settings.topic_dlq, records)
    finally:
        await producer.stop()

    seen: list[tuple[int, int]] = []
    keys: set[str | None] = set()
    cursor: str | None = None
    pages = 0
    tracemalloc.start()
    try:
        while True:
            tracemalloc.reset_peak()
            page = await read_dead_letters_page(settings, limit=50, cursor=cursor)
            _, peak = tracemalloc.get_traced_memory()
            pages += 1
            assert len(page.letters) <= 50
            # One page of 50 x 40 KB is ~2 MB parsed; the topic holds 12 MB.
            assert peak < 8 * 1024 * 1024, f"page {pages} peaked at {peak} bytes"
            seen.extend((letter.partition, letter.offset) for letter in page.letters)
            keys.update(letter.key for letter in page.letters)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            assert pages < 20, "paging does not end"
    finally:
        tracemalloc.stop()
    assert len(seen) == 300 and len(set(seen)) == 300
    assert keys == {f"k{n}" for n in range(300)}
    assert pages in (6, 7)  # 6 full pages, maybe an empty last one

    later = await read_dead_letters_page(settings, limit=10, since=datetime.now(UTC))
    assert later.letters == [] and later.next_cursor is None
    earlier = await read_dead_letters_page(
        settings, limit=10, since=datetime.now(UTC) - timedelta(hours=1)
    )
    assert len(earlier.letters) == 10 and earlier.next_cursor is not None

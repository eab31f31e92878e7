"""Reading the dead-letter topic and sending its records back, on the real Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.kafka.client import encode, make_producer, send_all
from pipeline.kafka.topics import ensure_topics
from pipeline.worker.dlq import (
    dlq_record,
    parse_dead_letter,
    read_dead_letters,
    replay_dead_letters,
)
from tests.integration.helpers import isolated, read_topic

pytestmark = pytest.mark.integration


async def test_list_and_replay_dead_letters(stack: Any) -> None:
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

"""The replicated table on a compacted topic: writes flushed by one worker reach the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.kafka.client import make_producer
from pipeline.kafka.compacted import ReplicatedTable
from tests.integration.helpers import isolated, wait_for

pytestmark = pytest.mark.integration


async def test_writes_are_shared_and_survive_a_restart(stack: Any) -> None:
    settings = isolated(stack.settings, "table")
    first, second = (ReplicatedTable(settings, settings.topic_stories) for _ in range(2))
    await first.start()
    await second.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        first["a"] = "1"
        first["b"] = "2"
        assert "a" not in second  # nothing is shared before the flush
        assert await first.flush(producer) == 2
        assert first.pending == {}

        async def replicated() -> bool:
            return second.get("a") == "1" and second.get("b") == "2"

        await wait_for(replicated, 30, "the second table to see the first one's writes", 0.2)
        second["a"] = "3"
        await second.flush(producer)
        await wait_for(lambda: _equals(first, "a", "3"), 30, "the update to come back", 0.2)
    finally:
        await first.stop()
        await second.stop()
        await producer.stop()
    restarted = ReplicatedTable(settings, settings.topic_stories)
    await restarted.start()
    try:
        assert dict(restarted) == {"a": "3", "b": "2"}
    finally:
        await restarted.stop()


async def _equals(table: ReplicatedTable, key: str, value: str) -> bool:
    return table.get(key) == value


async def test_entries_expire_from_reads_memory_and_topic_config(stack: Any) -> None:
    settings = isolated(stack.settings, "ttl")
    table = ReplicatedTable(settings, settings.topic_stories, ttl_seconds=0.5)
    await table.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        table["old"] = "1"
        await table.flush(producer)
        assert table.get("old") == "1"
        await asyncio.sleep(0.7)
        assert table.get("old") is None and "old" not in list(table)
        table["new"] = "2"
        await table.flush(producer)  # prunes what expired
        assert "old" not in table.data and table.get("new") == "2"
    finally:
        await table.stop()
        await producer.stop()
    assert table._topic_configs() == {"cleanup.policy": "compact,delete", "retention.ms": "500"}

"""The Faust agents' batching and acknowledgement, through ``agent.test_context()``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.worker.app import create_app
from pipeline.worker.batches import Worker


class RecordingWorker(Worker):
    """Records the batches the agents hand over instead of calling Kafka and the index."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.enriched: list[list[bytes | None]] = []
        self.indexed: list[list[bytes | None]] = []

    async def enrich_batch(self, values: Sequence[tuple[bytes | None, dict[str, Any]]]) -> int:
        self.enriched.append([value for value, _ in values])
        return len(values)

    async def index_batch(self, values: Sequence[tuple[bytes | None, dict[str, Any]]]) -> int:
        self.indexed.append([value for value, _ in values])
        return len(values)


def _app(worker_settings: Settings) -> tuple[Any, RecordingWorker]:
    worker = RecordingWorker(worker_settings)
    return create_app(worker_settings, worker), worker


@pytest.mark.parametrize("name", ["enrich", "sink"])
async def test_agents_hand_over_micro_batches_in_order(name: str) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", batch_size=3, batch_seconds=0.05)
    app, worker = _app(settings)
    mine, other = (
        (worker.enriched, worker.indexed) if name == "enrich" else (worker.indexed, worker.enriched)
    )
    async with app.agents[name].test_context() as context:
        for n in range(7):
            await context.put(key=str(n).encode(), value=f"v{n}".encode())
        for _ in range(200):
            if sum(len(batch) for batch in mine) == 7:
                break
            await asyncio.sleep(0.02)
    flat = [value for batch in mine for value in batch]
    assert flat == [f"v{n}".encode() for n in range(7)]
    assert all(len(batch) <= 3 for batch in mine)
    assert other == []

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


class FlakyRecogniser:
    """A recogniser whose server is down for the first ``outages`` calls."""

    name = "flaky"

    def __init__(self, outages: int) -> None:
        self.outages = outages
        self.calls = 0

    def spans(self, texts: Sequence[str]) -> list[list[Any]]:
        from pipeline.errors import RecogniserUnavailableError

        self.calls += 1
        if self.calls <= self.outages:
            raise RecogniserUnavailableError("http://127.0.0.1:1/", "connection refused", 0.01)
        return [[] for _ in texts]


async def test_recogniser_outage_waits_and_retries_the_same_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.enrich.enricher import Enricher
    from pipeline.models import RawArticle
    from pipeline.worker import batches as batches_module

    monkeypatch.setattr(batches_module, "RECOGNISER_RETRY_FIRST", 0.01)
    flaky = FlakyRecogniser(outages=2)
    worker = Worker(Settings(kafka_bootstrap="127.0.0.1:1"))
    worker._enricher = Enricher(recogniser=flaky)
    articles = [RawArticle(id="a", title="Kerry in Moscow", body="Talks went on.")]
    results = await worker._enrich_until_done(articles)
    assert flaky.calls == 3  # two outages waited out, then the same batch enriched
    assert [r.entities.person for r in results] == [[]]

"""The Faust agents' batching and acknowledgement, through ``agent.test_context()``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.worker.app import create_app
from pipeline.worker.batches import Worker
from pipeline.worker.crashes import CrashLedger, Note


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


class MemoryNotes:
    """The in-flight notes the agents write, kept in a list instead of the Kafka topic."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    async def send(
        self, stage: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> int:
        self.records += [(topic, key, value) for key, value in records]
        return len(records)

    async def read(self, keys: set[str]) -> dict[str, bytes | None]:
        latest = {k.decode(): v for _, k, v in self.records if k is not None}
        return {key: latest[key] for key in keys if key in latest}


def _app(
    worker_settings: Settings, notes: MemoryNotes | None = None
) -> tuple[Any, RecordingWorker]:
    worker = RecordingWorker(worker_settings)
    notes = notes or MemoryNotes()
    ledger = CrashLedger(worker_settings, notes.send, notes.read)
    return create_app(worker_settings, worker, ledger), worker


@pytest.mark.parametrize("name", ["enrich", "sink"])
async def test_agents_hand_over_micro_batches_in_order(name: str) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", batch_size=3, batch_seconds=0.05)
    notes = MemoryNotes()
    app, worker = _app(settings, notes)
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
    # Each batch was noted in flight before its work and cleared after it.
    written = [Note.decode(value) for _, _, value in notes.records]
    assert len(written) == 2 * len(mine)
    assert [bool(n.inflight) for n in written] == [True, False] * len(mine)
    assert {topic for topic, _, _ in notes.records} == {settings.topic_inflight}


class FlakyRecogniser:
    """A recogniser whose server is down for the first ``outages`` calls."""

    name = "flaky"
    model = "flaky-1"

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
    from pipeline.worker import enrich_stage

    monkeypatch.setattr(enrich_stage, "RECOGNISER_RETRY_FIRST", 0.01)
    flaky = FlakyRecogniser(outages=2)
    worker = Worker(Settings(kafka_bootstrap="127.0.0.1:1"))
    worker.enrich_stage._enricher = Enricher(recogniser=flaky)
    articles = [RawArticle(id="a", title="Kerry in Moscow", body="Talks went on.")]
    results = await worker.enrich_stage._enrich_until_done(articles)
    assert flaky.calls == 3  # two outages waited out, then the same batch enriched
    assert [r.entities.person for r in results] == [[]]


def test_batch_positions_name_each_partitions_first_and_last_offset() -> None:
    from pipeline.worker.app import positions

    wheres = [
        {"topic": "raw", "partition": 1, "offset": 7},
        {"topic": "raw", "partition": 0, "offset": 3},
        {"topic": "raw", "partition": 1, "offset": 8},
        {"topic": "raw", "partition": 1, "offset": 6},
    ]
    assert positions(wheres) == {"raw/1": [6, 8], "raw/0": [3, 3]}
    assert positions([]) == {}


@pytest.mark.parametrize(("items", "parts"), [(7, 3), (8, 8), (2, 8), (1, 1), (64, 8), (0, 4)])
def test_split_evenly_keeps_order_and_balances(items: int, parts: int) -> None:
    from pipeline.worker.enrich_stage import split_evenly

    runs = split_evenly(list(range(items)), parts)
    assert [x for run in runs for x in run] == list(range(items))
    assert all(runs) and len(runs) <= max(1, parts)
    if runs:
        assert max(map(len, runs)) - min(map(len, runs)) <= 1


class SlowRecogniser:
    """A server-like recogniser: each call waits ``delay`` (as for an HTTP answer) and
    records how many calls were in flight at once."""

    name = "corenlp"
    model = "slow-1"

    def __init__(self, delay: float) -> None:
        import threading

        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def spans(self, texts: Sequence[str]) -> list[list[Any]]:
        import time

        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        return [[] for _ in texts]


@pytest.mark.parametrize("threads", [1, 2])
async def test_a_batch_is_enriched_in_parts_side_by_side_and_in_order(threads: int) -> None:
    from pipeline.enrich.enricher import Enricher
    from pipeline.models import RawArticle

    slow = SlowRecogniser(0.05)
    worker = Worker(Settings(kafka_bootstrap="127.0.0.1:1", nlp_threads=threads))
    worker.enrich_stage._enricher = Enricher(recogniser=slow)
    articles = [
        RawArticle(id=str(n), title="Election news", body="The vote " * (n + 1)) for n in range(8)
    ]
    results = await worker.enrich_stage._enrich_parts(articles)
    assert [r.word_count for r in results] == [2 * (n + 1) for n in range(8)]  # in order
    assert slow.most == threads

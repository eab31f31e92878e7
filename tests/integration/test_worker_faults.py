"""Faults the worker survives, on the real servers (issue 9): the search engine down during
ingest, the worker started while it is down, and a graceful SIGTERM mid-ingest.

Each test prints what it measured (articles sent, indexed, duplicates, time to recover);
none asserts on timings, only on "0 lost, 0 duplicated in the index" and on the worker
staying up (or exiting 0 when asked to stop)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka.client import make_producer, publish_raw
from pipeline.kafka.topics import ensure_topics, topic_partitions
from pipeline.models import RawArticle, Source
from pipeline.provision import run_setup
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend
from tests.integration.test_worker import WorkerProcess
from tests.plugins.kafka_helpers import isolated, wait_for
from workshop.stack.process import read_pid, stop_process

pytestmark = pytest.mark.integration

_SENTENCE = (
    "council budget river bridge election minister hospital school storm harbour farmers "
    "market shares inflation court judge museum festival orchestra stadium league coach "
    "railway airport strike union factory wages energy solar wind coal drought flood "
    "vaccine clinic research university students teachers police protest parliament "
    "treaty border trade tariff export import bank loan housing rent mayor village "
    "forest wildlife coast fishing harvest rainfall bushfire volcano earthquake satellite "
    "rocket telescope software startup investors merger chemistry prize novel author film"
)
WORDS = _SENTENCE.split()
PLACES = ("London", "Paris", "Berlin", "Madrid", "Nairobi", "Lagos", "Delhi", "Tokyo", "Lima")
PEOPLE = ("Angela Merkel", "Barack Obama", "Emmanuel Macron", "Jacinda Ardern", "Lula da Silva")


def articles(tag: str, count: int, seed: int) -> list[RawArticle]:
    """``count`` distinct articles with varied text (no two share their normalised text, so
    none is dropped as an exact duplicate)."""
    rng = random.Random(seed)
    out: list[RawArticle] = []
    for n in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(45))
        body = (
            f"{rng.choice(PEOPLE)} spoke in {rng.choice(PLACES)} on day {n} of the {tag} run. "
            f"Reporters noted {words}. The item number is {seed}-{n}."
        )
        out.append(
            RawArticle(
                id=f"{tag}-{n:05d}",
                url=f"https://news.example.org/{tag}/{n}",
                title=f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} in {rng.choice(PLACES)}",
                body=body,
                source=Source(name="Fault wire", domain="news.example.org"),
            )
        )
    return out


async def publish(settings: Settings, batch: list[RawArticle]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        await publish_raw(producer, settings.topic_raw, batch)
    finally:
        await producer.stop()


async def topic_size(settings: Settings, topic: str) -> int:
    """Records in ``topic`` (sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        return sum((await consumer.end_offsets(tps)).values()) if tps else 0
    finally:
        await consumer.stop()


async def index_count(settings: Settings) -> int | None:
    """Documents behind the alias; None while the engine or the alias is not there."""
    backend = open_backend(settings)
    try:
        await backend.refresh(settings.index_alias)
        return await backend.count(settings.index_alias)
    except Exception:
        return None
    finally:
        await backend.close()


async def wait_indexed(
    settings: Settings, worker: WorkerProcess, count: int, limit: float, what: str, every: float
) -> None:
    """Wait until ``count`` documents are indexed; fail at once if the worker dies."""

    async def enough() -> bool:
        assert worker.alive(), worker.tail()
        return (await index_count(settings) or 0) >= count

    await wait_for(enough, limit, what, every=every)


async def indexed_ids(settings: Settings) -> list[str]:
    """Every document ``_id`` behind the alias (one search; the tests index < 10,000)."""
    backend = open_backend(settings)
    try:
        await backend.refresh(settings.index_alias)
        body = {"size": 10000, "_source": False, "query": {"match_all": {}}}
        hits = (await backend.search(settings.index_alias, body))["hits"]["hits"]
        return [str(hit["_id"]) for hit in hits]
    finally:
        await backend.close()


def report(name: str, **figures: Any) -> None:
    print(f"\n[{name}] " + " ".join(f"{k}={v}" for k, v in figures.items()))


def check_exactly_once(
    name: str, sent: list[RawArticle], ids: list[str], count: int, **figures: Any
) -> None:
    duplicates = len(ids) - len(set(ids))
    lost = sorted({a.id for a in sent} - set(ids))
    report(
        name, sent=len(sent), indexed=count, distinct_ids=len(set(ids)), duplicates=duplicates,
        lost=len(lost), **figures,
    )  # fmt: skip
    assert duplicates == 0
    assert not lost, lost[:10]
    assert count == len(sent) == len(set(ids))


class SearchNodeControl:
    """Stops and restarts the session stack's real search node."""

    def __init__(self, stack: Any) -> None:
        if stack.local is None:
            pytest.skip("the search node is not the local test stack's: cannot stop it")
        self.local = stack.local

    def stop(self) -> None:
        node = self.local.search
        pid = read_pid(node.pid_file) or self.local.status().search.pid
        assert pid is not None, "the search node is not running"
        stop_process(pid, timeout=node.stop_timeout, marker=node.marker_for())

    def start(self) -> float:
        """Start it again (the other servers, healthy, are left alone); seconds it took."""
        started = time.monotonic()
        self.local.up()
        return time.monotonic() - started

    def ensure_up(self) -> None:
        if not self.local.status().search.healthy:
            self.local.up()


@pytest.fixture
def search_node(stack: Any) -> Iterator[SearchNodeControl]:
    control = SearchNodeControl(stack)
    yield control
    control.ensure_up()  # whatever happened, the next tests find it running


@pytest.fixture
def fault_settings(stack: Any) -> Settings:
    return isolated(stack.settings, "faults", batch_size=32, batch_seconds=0.5)


async def test_search_engine_down_60s_during_ingest_loses_and_duplicates_nothing(
    fault_settings: Settings, search_node: SearchNodeControl, tmp_path: Path
) -> None:
    settings = fault_settings
    sent = articles("outage", 500, seed=9)
    first, second = sent[:250], sent[250:]
    await run_setup(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, first)

        await wait_indexed(settings, worker, 40, 300, "the first articles to be indexed", 0.5)
        indexed_at_stop = await index_count(settings)
        search_node.stop()
        down_at = time.monotonic()
        enriched_at_stop = await topic_size(settings, settings.topic_enriched)
        await publish(settings, second)  # the rest of the replay arrives during the outage
        while time.monotonic() - down_at < 60:
            assert worker.alive(), "the worker exited while the search node was down\n" + (
                worker.tail()
            )
            await asyncio.sleep(2)
        enriched_during = await topic_size(settings, settings.topic_enriched) - enriched_at_stop
        assert enriched_during > 0, "enrichment stopped while the sink waited\n" + worker.tail()
        restart_s = search_node.start()
        back_at = time.monotonic()

        await wait_indexed(
            settings, worker, len(sent), 600, "every article to be indexed after the outage", 1
        )
        recover_s = time.monotonic() - back_at
        assert worker.alive(), worker.tail()
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        log_text = worker.log_file.read_text(errors="replace")
        check_exactly_once(
            "search-down-60s", sent, ids, count,
            indexed_before_outage=indexed_at_stop, enriched_during_outage=enriched_during,
            outage_s=round(back_at - down_at - restart_s, 1), node_restart_s=round(restart_s, 1),
            recover_s=round(recover_s, 1), sink_retry_lines=log_text.count("sink.retry"),
        )  # fmt: skip
        assert "worker.fail_stop" not in log_text
    finally:
        worker.stop()


async def test_worker_started_while_search_engine_down_waits_then_catches_up(
    fault_settings: Settings, search_node: SearchNodeControl, tmp_path: Path
) -> None:
    settings = fault_settings
    sent = articles("late", 120, seed=10)
    await ensure_topics(settings)
    search_node.stop()
    down_at = time.monotonic()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, sent)

        async def enriched() -> bool:
            assert worker.alive(), worker.tail()
            return await topic_size(settings, settings.topic_enriched) >= len(sent)

        # The sink waits for the engine; the enrich agent goes on regardless.
        await wait_for(enriched, 400, "every article to be enriched with the engine down")
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert worker.alive(), worker.tail()
        waiting_log = worker.log_file.read_text(errors="replace")
        assert waiting_log.count("sink.search_unavailable") == 1, waiting_log[-4000:]
        assert "Traceback" not in waiting_log, waiting_log[-4000:]
        restart_s = search_node.start()
        back_at = time.monotonic()

        await wait_indexed(
            settings,
            worker,
            len(sent),
            300,
            "every article to be indexed once the engine runs",
            1.0,
        )
        recover_s = time.monotonic() - back_at
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        log_text = worker.log_file.read_text(errors="replace")
        check_exactly_once(
            "started-while-search-down", sent, ids, count,
            outage_s=round(back_at - down_at - restart_s, 1), node_restart_s=round(restart_s, 1),
            recover_s=round(recover_s, 1),
            wait_log_lines=log_text.count("sink.search_unavailable"),
        )  # fmt: skip
        assert "sink.search_available" in log_text
        assert "worker.fail_stop" not in log_text
    finally:
        worker.stop()


async def test_sigterm_mid_ingest_exits_0_and_the_next_worker_completes_exactly_once(
    fault_settings: Settings, tmp_path: Path
) -> None:
    settings = fault_settings
    sent = articles("sigterm", 300, seed=11)
    await run_setup(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, sent)

        await wait_indexed(settings, worker, 60, 300, "a fifth of the articles to be indexed", 0.5)
        assert worker.process is not None
        signalled = time.monotonic()
        worker.process.terminate()
        code = worker.process.wait(120)
        stop_s = time.monotonic() - signalled
        at_stop = await index_count(settings)
        assert code == 0, worker.tail()
        first_log = worker.log_file.read_text(errors="replace")
        assert "worker.fail_stop" not in first_log
        assert "worker.stopped" in first_log

        restarted = time.monotonic()
        worker.start()  # the next worker picks up what the first handed back

        await wait_indexed(
            settings, worker, len(sent), 400, "every article to be indexed by the next worker", 1.0
        )
        recover_s = time.monotonic() - restarted
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        check_exactly_once(
            "sigterm-mid-ingest", sent, ids, count, exit_code=code, indexed_at_sigterm=at_stop,
            batches_handed_back=first_log.count("batch_handed_back"),
            stop_s=round(stop_s, 1), recover_s=round(recover_s, 1),
        )  # fmt: skip
    finally:
        worker.stop()

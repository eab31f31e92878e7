"""The real ``newswire worker`` in a child process, and the helpers the worker integration
tests share (varied articles, publishing them, counting the index, the exactly-once check),
as a pytest plugin: each is a fixture, so the worker, fault, broker-restart, rebalance and
secure-Kafka tests take them as arguments and never import one another.

``worker_process`` is a factory, ``worker_process(settings, log_file)``: it makes a
``WorkerProcess`` (not started) and stops every one it made when the test ends, whatever
happened. The other fixtures return the function of the same name (``make_articles`` is
``articles`` of the fault tests)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.kafka.client import make_producer, publish_raw
from pipeline.kafka.topics import topic_partitions
from pipeline.models import RawArticle, Source
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend
from tests.plugins.kafka_helpers import env_for, session_fixture_of, wait_for

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``newswire worker`` in a child process, with its log kept for failures."""

    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        env = {
            **os.environ,
            **env_for(self.settings),
            "NEWSWIRE_WORKER_WEB_PORT": "0",
            **extra_env,
        }
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]


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


def make_articles(tag: str, count: int, seed: int) -> list[RawArticle]:
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
    """Send ``batch`` to the raw topic (and wait until Kafka has it)."""
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
    settings: Settings,
    worker: WorkerProcess,
    count: int,
    limit: float,
    what: str,
    every: float,
    sent: list[RawArticle] | None = None,
) -> None:
    """Wait until ``count`` documents are indexed; fail at once if the worker dies. With
    ``sent``, a timeout says which articles are missing and where their records are."""

    async def enough() -> bool:
        assert worker.alive(), worker.tail()
        return (await index_count(settings) or 0) >= count

    try:
        await wait_for(enough, limit, what, every=every)
    except AssertionError as exc:
        if sent is None:
            raise
        raise AssertionError(f"{exc}: {await lost_where(settings, sent)}") from exc


def block_article_writes(search_url: str, settings: Settings, on: bool) -> None:
    """The article indices refuse (or take again) every write, reads still answer: the
    sink stalls as in an outage, while the story table in the same engine still works."""
    import httpx

    answer = httpx.put(
        f"{search_url}/{settings.index_alias}/_settings",
        json={"index.blocks.write": on},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


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


async def lost_where(settings: Settings, sent: list[RawArticle]) -> str:
    """For a failure message: the sent articles not indexed, and which of the worker's
    topics hold a record naming each (raw, enriched, copies, DLQ)."""
    from pipeline.kafka.client import bootstrap as bootstrap_of
    from tests.plugins.kafka_helpers import read_committed

    lost = sorted({a.id for a in sent} - set(await indexed_ids(settings)))
    bootstrap = bootstrap_of(settings)
    topics = {
        name: await read_committed(bootstrap, topic)
        for name, topic in (
            ("raw", settings.topic_raw),
            ("enriched", settings.topic_enriched),
            ("copies", settings.topic_copies),
            ("dlq", settings.topic_dlq),
        )
    }
    where = {
        id_: [f"{name} x{sum(id_.encode() in v for v in values)}" for name, values in
              topics.items() if any(id_.encode() in v for v in values)]
        for id_ in lost[:20]
    }  # fmt: skip
    return f"{len(lost)} of {len(sent)} sent not indexed; in topics: {where}"


def report(name: str, **figures: Any) -> None:
    print(f"\n[{name}] " + " ".join(f"{k}={v}" for k, v in figures.items()))


def check_exactly_once(
    name: str, sent: list[RawArticle], ids: list[str], count: int, **figures: Any
) -> None:
    """Print what the test measured; fail on any article lost or indexed twice."""
    duplicates = len(ids) - len(set(ids))
    lost = sorted({a.id for a in sent} - set(ids))
    report(
        name, sent=len(sent), indexed=count, distinct_ids=len(set(ids)), duplicates=duplicates,
        lost=len(lost), **figures,
    )  # fmt: skip
    assert duplicates == 0
    assert not lost, lost[:10]
    assert count == len(sent) == len(set(ids))


@pytest.fixture
def worker_process() -> Iterator[Callable[[Settings, Path], WorkerProcess]]:
    """A factory of ``WorkerProcess`` (not started); each is stopped when the test ends."""
    made: list[WorkerProcess] = []

    def make(settings: Settings, log_file: Path) -> WorkerProcess:
        worker = WorkerProcess(settings, log_file)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


make_articles_fixture = session_fixture_of(make_articles)
publish_fixture = session_fixture_of(publish)
topic_size_fixture = session_fixture_of(topic_size)
index_count_fixture = session_fixture_of(index_count)
block_article_writes_fixture = session_fixture_of(block_article_writes)
wait_indexed_fixture = session_fixture_of(wait_indexed)
indexed_ids_fixture = session_fixture_of(indexed_ids)
check_exactly_once_fixture = session_fixture_of(check_exactly_once)

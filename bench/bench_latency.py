"""Seconds from Kafka to search, throughput against ``enrich --jsonl``, and scale-out
(``make bench``; issue 11).

Self-contained: starts its own local stack (Kafka, Elasticsearch, CoreNLP) in
``.newswire/bench`` on ports 36092/36093/36200/36300/36500 (``--port-base`` moves them;
a stack already healthy there is reused and left running), and real ``newswire worker``
subprocesses; stops everything it started on exit, Ctrl-C or error.

1. Latency: bbc-dev articles (about 380 words each) produced to the raw topic at fixed
   rates (default 2, 5 and 10 per second, 300 each); a watcher searches the index every
   100 ms for the ids not yet seen. Reports p50/p95/p99 from produce to searchable, the
   backlog (produced but not yet searchable) and the consumer group's lag on the raw topic
   early and at the end, and where the time goes: each batch's stage times come from the
   worker's ``enrich.batch`` / ``sink.batch`` log lines (JSON), mapped to articles by the
   Kafka positions they name.
2. Throughput: the same texts through the ``enrich --jsonl`` code path in this process
   against the same CoreNLP server, before and after all of them at once through a warm
   worker (whose end is found by counting the index every 0.5 s); words/s ratio.
3. Scale-out: one then two worker processes on a 4-partition topic, all articles at once;
   throughput ratio, with the number of CPUs this process may use.

Never a test: it reports numbers and targets; it fails only when something breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout

import structlog  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from pipeline.enrich.dedup import fingerprint  # noqa: E402
from pipeline.enrich.enricher import Enricher, count_words  # noqa: E402
from pipeline.enrich.jsonl import enrich_jsonl  # noqa: E402
from pipeline.enrich.recogniser import corenlp_url  # noqa: E402
from pipeline.kafka.client import encode, make_producer  # noqa: E402
from pipeline.kafka.topics import topic_partitions  # noqa: E402
from pipeline.models import RawArticle, Source  # noqa: E402
from pipeline.provision import run_setup  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sinks.engines import open_backend  # noqa: E402
from workshop.evaluation import BBC_DIR, eval_dir, read_bbc  # noqa: E402
from workshop.stack import LocalStack  # noqa: E402

TARGETS = {
    "p50_at_10": 1.5,
    "p99_at_10": 3.0,
    "p50_at_2": 1.0,
    "throughput_ratio": 0.90,
    "scaleout_ratio": 1.6,
}
POLL_EVERY = 0.1
#: Articles that go through first, to warm the worker (CoreNLP, connections, the tables).
WARMUP = 4


# ----------------------------------------------------------------------------- helpers


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs of the machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Share of the machine's CPU time that was busy between two :func:`cpu_times`."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def stack_settings(home: Path, base: int, **overrides: Any) -> Settings:
    """The bench stack: its own home and ports, small heaps."""
    values: dict[str, Any] = {
        "home": home,
        "kafka_port": base + 92,
        "kafka_controller_port": base + 93,
        "search_port": base + 200,
        "search_transport_port": base + 300,
        "corenlp_port": base + 500,
        "kafka_heap": "256m",
        "search_heap": "512m",
        "kafka_bootstrap": f"127.0.0.1:{base + 92}",
        "elasticsearch_url": f"http://127.0.0.1:{base + 200}",
        "worker_web_port": 0,
        "poller_metrics_port": 0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


def isolated(settings: Settings, name: str, **extra: Any) -> Settings:
    """Topics, alias and consumer group of one run, so runs never mix."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    return settings.model_copy(
        update={
            "index_alias": f"nwbench-{tag}-articles",
            "topic_raw": f"nwbench.{tag}.raw",
            "topic_enriched": f"nwbench.{tag}.enriched",
            "topic_dlq": f"nwbench.{tag}.dlq",
            "story_table_index": f"nwbench-{tag}-story-table",
            "worker_id": f"nwbench-{tag}",
            **extra,
        }
    )


WORKER_ENV = (
    "kafka_bootstrap", "elasticsearch_url", "index_alias", "topic_raw", "topic_enriched",
    "topic_dlq", "story_table_index", "worker_id", "topic_partitions", "corenlp_port",
)  # fmt: skip


#: Worker settings the bench passes on from its own environment (to compare tunings).
TUNING = ("NEWSWIRE_BATCH_", "NEWSWIRE_NLP_THREADS", "NEWSWIRE_INDEX_REFRESH", "NEWSWIRE_LOG_LEVEL")


def tuning_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(TUNING)}


class WorkerProcess:
    """``newswire worker`` as a child process logging JSON lines to a file."""

    def __init__(self, settings: Settings, log_file: Path, home: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
        env.update(tuning_env())  # the caller's tuning is passed on
        for name in WORKER_ENV:
            env[f"NEWSWIRE_{name.upper()}"] = str(getattr(self.settings, name))
        env["NEWSWIRE_CORENLP_URL"] = corenlp_url(self.settings)
        env.update(
            NEWSWIRE_HOME=str(self.home),
            NEWSWIRE_WORKER_WEB_PORT="0",
            NEWSWIRE_LOG_FORMAT="json",
        )
        env.setdefault("NEWSWIRE_LOG_LEVEL", "INFO")  # the batch lines are at INFO
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops it
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def profile(self, output: Path) -> subprocess.Popen[bytes] | None:
        """py-spy sampling this worker until it exits (collapsed stacks in ``output``)."""
        spy = Path(sys.executable).with_name("py-spy")
        if self.process is None or not spy.exists():
            return None
        return subprocess.Popen(
            [str(spy), "record", "--pid", str(self.process.pid), "--rate", "100",
             "--format", "raw", "--output", str(output), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def batches(self) -> list[dict[str, Any]]:
        """The worker's ``enrich.batch`` and ``sink.batch`` log lines."""
        out: list[dict[str, Any]] = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            if '.batch"' not in line or not line.startswith("{"):
                continue
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if record.get("event") in ("enrich.batch", "sink.batch"):
                    out.append(record)
        return out

    def tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:]


@dataclass
class Article:
    """One produced article and what was seen of it."""

    raw: RawArticle
    words: int
    produced: float = 0.0
    partition: int = -1
    offset: int = -1
    visible: float | None = None


@dataclass
class Corpus:
    """bbc-dev articles (title + body), with their word counts."""

    items: list[tuple[str, str, str]]  # (id suffix, title, body)
    words: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Corpus:
        """bbc-dev without its exact duplicates (the worker would drop them unseen)."""
        items: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for category, name, title, body in read_bbc(root):
            key = fingerprint(title, None, body)
            if key not in seen:
                seen.add(key)
                items.append((f"{category}-{name.removesuffix('.txt')}", title, body))
        corpus = cls(items)
        corpus.words = [count_words(t) + count_words(b) for _, t, b in items]
        return corpus

    def articles(self, tag: str, count: int, start: int = 0, marked: bool = False) -> list[Article]:
        """``count`` articles from ``start`` on; ``marked`` ones get a sentence of their own
        (warm-up articles, so they are not duplicates of the measured ones)."""
        out = []
        for k in range(count):
            n = (start + k) % len(self.items)
            key, title, body = self.items[n]
            if marked:
                body = f"{body}\n\nThis is {tag} item {k}."
            raw = RawArticle(
                id=f"{tag}-{k:05d}-{key}",
                url=f"https://bench.example.org/{tag}/{k}",
                title=title,
                body=body,
                source=Source(name="Bench wire", domain="bench.example.org"),
            )
            out.append(Article(raw, self.words[n]))
        return out


class Bench:
    """The stack, the runs and their cleanup."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(args.home).resolve()
        self.base = args.port_base
        self.settings = stack_settings(self.home, self.base)
        self.stack: LocalStack | None = None
        self.started_stack = False
        self.workers: list[WorkerProcess] = []
        self.runs_dir = self.home / "runs" / time.strftime("%Y%m%d-%H%M%S")
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # -------------------------------------------------------------- stack and workers

    def up(self) -> None:
        self.stack = LocalStack(self.settings, progress=self.say)
        self.started_stack = not self.stack.status().healthy
        if not self.started_stack:
            self.say(f"reusing the healthy stack in {self.home}")
        self.stack.up()

    def down(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        if self.stack is not None and self.started_stack and not self.args.keep_stack:
            self.say("stopping the bench stack")
            self.stack.down()

    def start_workers(self, settings: Settings, count: int, name: str) -> list[WorkerProcess]:
        started = []
        for n in range(count):
            worker = WorkerProcess(
                settings, self.runs_dir / f"{name}-worker{n}.log", self.home / "workers" / f"w{n}"
            )
            worker.start()
            self.workers.append(worker)
            started.append(worker)
        return started

    def stop_workers(self, workers: list[WorkerProcess]) -> None:
        for worker in workers:
            worker.stop()
            self.workers.remove(worker)

    # -------------------------------------------------------------- Kafka and index

    async def produce(
        self, settings: Settings, articles: list[Article], rate: float | None
    ) -> None:
        """Send at ``rate`` per second (None: all at once); each ``produced`` is the time
        just before its send, and its position comes from the broker's acknowledgement."""
        producer = make_producer(settings, linger_ms=0, client_id="bench-producer")
        await producer.start()
        try:
            pending = []
            start = time.time()
            for k, article in enumerate(articles):
                if rate:
                    delay = start + k / rate - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                article.produced = time.time()
                future = await producer.send(
                    settings.topic_raw,
                    value=encode(article.raw),
                    key=article.raw.id.encode("utf-8"),
                )
                pending.append((article, future))
                if rate:  # at a fixed rate each send is awaited apart (no batching)
                    meta = await future
                    article.partition, article.offset = meta.partition, meta.offset
            for article, future in pending:
                meta = await future
                article.partition, article.offset = meta.partition, meta.offset
        finally:
            await producer.stop()

    async def watch(
        self,
        settings: Settings,
        articles: list[Article],
        done: asyncio.Event,
        limit: float,
        workers: list[WorkerProcess],
    ) -> None:
        """Every 100 ms, search the ids produced and not yet seen; stamp the ones found."""
        backend = open_backend(settings)
        deadline = time.time() + limit
        try:
            while True:
                waiting = [a for a in articles if a.produced and a.visible is None]
                if not waiting and done.is_set():
                    return
                if time.time() > deadline:
                    missing = sum(a.visible is None for a in articles)
                    raise RuntimeError(f"{missing} article(s) not searchable after {limit:.0f} s")
                for worker in workers:
                    if not worker.alive():
                        raise RuntimeError(f"a worker exited:\n{worker.tail()}")
                asked = time.time()
                if waiting:
                    by_id = {a.raw.id: a for a in waiting}
                    body = {
                        "query": {"ids": {"values": list(by_id)}},
                        "_source": False,
                        "size": len(by_id),
                    }
                    with contextlib.suppress(Exception):
                        hits = (await backend.search(settings.index_alias, body))["hits"]["hits"]
                        now = time.time()
                        for hit in hits:
                            by_id[hit["_id"]].visible = now
                await asyncio.sleep(max(0.0, POLL_EVERY - (time.time() - asked)))
        finally:
            await backend.close()

    async def count(self, settings: Settings) -> int:
        backend = open_backend(settings)
        try:
            return await backend.count(settings.index_alias)
        finally:
            await backend.close()

    async def watch_count(
        self, settings: Settings, expect: int, limit: float, workers: list[WorkerProcess]
    ) -> float:
        """When the index holds ``expect`` documents (a count every 0.5 s: lighter than the
        latency watcher, whose searches would compete with the worker for the CPUs)."""
        backend = open_backend(settings)
        deadline = time.time() + limit
        try:
            while time.time() < deadline:
                for worker in workers:
                    if not worker.alive():
                        raise RuntimeError(f"a worker exited:\n{worker.tail()}")
                with contextlib.suppress(Exception):
                    if await backend.count(settings.index_alias) >= expect:
                        return time.time()
                await asyncio.sleep(0.5)
        finally:
            await backend.close()
        raise RuntimeError(f"fewer than {expect} documents after {limit:.0f} s")

    async def group_lag(self, settings: Settings) -> int | None:
        """Records of the raw topic the worker group has not committed yet."""
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
        try:
            await admin.start()
            await consumer.start()
            offsets = await admin.list_consumer_group_offsets(settings.worker_id)
            parts = await topic_partitions(consumer, settings.topic_raw)
            tps = [TopicPartition(settings.topic_raw, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            committed = {tp: meta.offset for tp, meta in offsets.items()}
            return int(sum(max(0, end - max(0, committed.get(tp, 0))) for tp, end in ends.items()))
        except Exception:
            return None
        finally:
            await consumer.stop()
            await admin.close()

    async def enriched_positions(self, settings: Settings, ids: set[str]) -> dict[str, str]:
        """``{id: "topic/partition@offset"}`` of the records in the enriched topic."""
        consumer = AIOKafkaConsumer(
            settings.topic_enriched,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: dict[str, str] = {}
        try:
            deadline = time.time() + 30
            while len(out) < len(ids) and time.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batch.items():
                    for record in records:
                        key = (record.key or b"").decode()
                        if key in ids:
                            out[key] = f"{tp.topic}/{tp.partition}@{record.offset}"
        finally:
            await consumer.stop()
        return out

    async def warm_up(
        self, settings: Settings, corpus: Corpus, workers: list[WorkerProcess]
    ) -> None:
        """Articles through the whole path before measuring (also waits for the group)."""
        warm = corpus.articles("warmup", WARMUP * settings.topic_partitions, marked=True)
        done = asyncio.Event()
        done.set()
        await self.produce(settings, warm, None)
        await self.watch(settings, warm, done, 240, workers)

    # -------------------------------------------------------------- the three sections

    async def latency(self, corpus: Corpus, rate: float, count: int) -> dict[str, Any]:
        settings = isolated(self.settings, f"rate{rate:g}")
        await run_setup(settings)
        workers = self.start_workers(settings, 1, f"latency-{rate:g}")
        try:
            await self.warm_up(settings, corpus, workers)
            articles = corpus.articles(f"r{rate:g}", count)
            done = asyncio.Event()
            watcher = asyncio.create_task(
                self.watch(settings, articles, done, count / rate + 600, workers)
            )
            samples: list[tuple[float, int, int | None]] = []

            async def sample() -> None:
                while not done.is_set():
                    await asyncio.sleep(1.0)
                    backlog = sum(1 for a in articles if a.produced and a.visible is None)
                    samples.append((time.time(), backlog, await self.group_lag(settings)))

            sampler = asyncio.create_task(sample())
            started = time.time()
            await self.produce(settings, articles, rate)
            produce_seconds = time.time() - started
            done.set()
            await sampler
            at_end = (
                sum(1 for a in articles if a.visible is None),
                await self.group_lag(settings),
            )
            await watcher
            batches = [b for w in workers for b in w.batches()]
            enriched = await self.enriched_positions(settings, {a.raw.id for a in articles})
        finally:
            self.stop_workers(workers)
            await self.drop(settings)
        latencies = [a.visible - a.produced for a in articles if a.visible is not None]
        early = samples[len(samples) // 4] if samples else (0.0, 0, None)
        return {
            "rate": rate,
            "articles": count,
            "achieved_rate": round(count / produce_seconds, 2),
            "p50": round(percentile(latencies, 0.50), 3),
            "p95": round(percentile(latencies, 0.95), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "max": round(max(latencies), 3),
            "backlog_quarter": early[1],
            "backlog_end": at_end[0],
            "lag_quarter": early[2],
            "lag_end": at_end[1],
            "stages": stage_breakdown(articles, batches, enriched, settings.topic_raw),
        }

    def jsonl_baseline(self, corpus: Corpus, count: int) -> dict[str, Any]:
        """The ``enrich --jsonl`` code path over the same texts, warm, in this process."""
        os.environ["NEWSWIRE_CORENLP_URL"] = corenlp_url(self.settings)
        from pipeline.settings import get_settings

        get_settings.cache_clear()
        articles = corpus.articles("jsonl", count)
        lines = [
            json.dumps({"id": a.raw.id, "title": a.raw.title, "body": a.raw.body}) for a in articles
        ]
        enricher = Enricher(batch_size=32)
        enrich_jsonl(lines[:8], io.StringIO(), enricher=enricher)  # warm-up
        started = time.perf_counter()
        enrich_jsonl(lines, io.StringIO(), batch_size=32, enricher=enricher)
        seconds = time.perf_counter() - started
        words = sum(a.words for a in articles)
        return {
            "articles": count,
            "words": words,
            "seconds": round(seconds, 2),
            "words_per_s": round(words / seconds),
        }

    async def end_to_end(
        self, corpus: Corpus, count: int, workers_count: int, name: str, partitions: int
    ) -> dict[str, Any]:
        """All ``count`` articles at once through ``workers_count`` warm workers."""
        settings = isolated(self.settings, name, topic_partitions=partitions)
        await run_setup(settings)
        workers = self.start_workers(settings, workers_count, name)
        spies = []
        try:
            await self.wait_members(settings, workers_count)
            await self.warm_up(settings, corpus, workers)
            if self.args.profile and workers_count == 1:
                spies = [w.profile(self.runs_dir / f"{name}-profile.txt") for w in workers]
            articles = corpus.articles(name, count)
            before = await self.count(settings)
            watcher = asyncio.create_task(self.watch_count(settings, before + count, 1800, workers))
            started, cpu_before = time.time(), cpu_times()
            await self.produce(settings, articles, None)
            finished = await watcher
            cpu_busy = busy_share(cpu_before, cpu_times())
        finally:
            self.stop_workers(workers)
            await self.drop(settings)
            for spy in spies:
                if spy is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        spy.wait(30)
        seconds = finished - started
        words = sum(a.words for a in articles)
        profile = self.runs_dir / f"{name}-profile.txt"
        return {
            **({"profile": top_costs(profile)} if profile.exists() else {}),
            "workers": workers_count,
            "partitions": partitions,
            "articles": count,
            "words": words,
            "seconds": round(seconds, 2),
            "words_per_s": round(words / seconds),
            "cpu_busy": cpu_busy,  # of every core of the machine, all processes
        }

    async def drop(self, settings: Settings) -> None:
        """Delete a run's index and topics (the stack may be reused for many runs)."""
        import httpx

        with contextlib.suppress(Exception):
            async with httpx.AsyncClient(timeout=30) as client:
                await client.delete(f"{settings.elasticsearch_url}/{settings.index_alias}-*")
                await client.delete(f"{settings.elasticsearch_url}/{settings.story_table_index}-*")
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        with contextlib.suppress(Exception):
            await admin.start()
            topics = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq]
            await admin.delete_topics(topics)
        with contextlib.suppress(Exception):
            await admin.close()

    async def wait_members(self, settings: Settings, count: int, limit: float = 120) -> None:
        """Until the worker group has ``count`` members (so no rebalance during a run)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            deadline = time.time() + limit
            while time.time() < deadline:
                with contextlib.suppress(Exception):
                    responses = await admin.describe_consumer_groups([settings.worker_id])
                    # raw DescribeGroupsResponse: groups of (error, id, state, type, protocol,
                    # members, ...)
                    for response in responses:
                        for group in response.groups:
                            if group[2] == "Stable" and len(group[5]) >= count:
                                return
                await asyncio.sleep(1.0)
            self.say(f"the group did not reach {count} stable member(s); measuring anyway")
        finally:
            await admin.close()


def stage_breakdown(
    articles: list[Article],
    batches: list[dict[str, Any]],
    enriched: dict[str, str],
    raw_topic: str,
) -> dict[str, dict[str, float]]:
    """Median and p95 seconds of each step, per article, from the batch log lines."""
    enrich_at: dict[str, dict[str, Any]] = {}
    sink_at: dict[str, dict[str, Any]] = {}
    for batch in batches:
        target = enrich_at if batch["event"] == "enrich.batch" else sink_at
        for where, (first, last) in batch.get("positions", {}).items():
            for offset in range(first, last + 1):
                target[f"{where}@{offset}"] = batch
    steps: dict[str, list[float]] = {}

    def add(name: str, start: float | None, end: float | None) -> None:
        if start is not None and end is not None:
            steps.setdefault(name, []).append(end - start)

    for article in articles:
        raw = enrich_at.get(f"{raw_topic}/{article.partition}@{article.offset}")
        sink = sink_at.get(enriched.get(article.raw.id, ""))
        if raw is None or sink is None:
            continue
        add("1 produced -> enrich batch taken", article.produced, raw.get("t_taken"))
        add("2 taken -> NLP started (story path)", raw.get("t_taken"), raw.get("t_nlp_started"))
        add("3 NLP (CoreNLP + enrichment)", raw.get("t_nlp_started"), raw.get("t_nlp_done"))
        add("4 NLP done -> enriched acked by Kafka", raw.get("t_nlp_done"), raw.get("t_sent"))
        add("5 enriched -> sink batch taken", raw.get("t_sent"), sink.get("t_taken"))
        add("6 sink taken -> bulk sent", sink.get("t_taken"), sink.get("t_bulk_sent"))
        add("7 bulk sent -> acknowledged", sink.get("t_bulk_sent"), sink.get("t_bulk_acked"))
        add("8 acknowledged -> seen by search", sink.get("t_bulk_acked"), article.visible)
    return {
        name: {
            "p50": round(percentile(values, 0.5), 3),
            "p95": round(percentile(values, 0.95), 3),
            "mean": round(statistics.fmean(values), 3),
        }
        for name, values in sorted(steps.items())
    }


def top_costs(path: Path, top: int = 15) -> dict[str, Any]:
    """The functions py-spy saw most on the CPU: own samples and samples under them, as
    shares of all samples (collapsed-stack lines: ``frame;frame;... count``)."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
                  for f in stack.split(";") if f]  # fmt: skip
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            under[frame] = under.get(frame, 0) + n

    def share(table: dict[str, int]) -> list[list[Any]]:
        best = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [[name, round(n / max(total, 1), 3)] for name, n in best]

    return {"samples": total, "own": share(own), "inclusive": share(under)}


# ----------------------------------------------------------------------------- report


def report(result: dict[str, Any]) -> str:
    lines = [f"cores available to this process: {result['cpus']} (machine: {os.cpu_count()})"]
    if result.get("latency"):
        lines += [
            "",
            "latency, produce -> searchable (s); backlog = produced, not yet searchable;"
            " lag = raw records not committed by the worker group",
            f"{'rate/s':>7} {'n':>5} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
            f" {'backlog q/end':>14} {'lag q/end':>11}",
        ]
        for run in result["latency"]:
            lines.append(
                f"{run['rate']:>7g} {run['articles']:>5} {run['p50']:>7.2f} {run['p95']:>7.2f}"
                f" {run['p99']:>7.2f} {run['max']:>7.2f}"
                f" {run['backlog_quarter']:>6}/{run['backlog_end']:<7}"
                f" {run['lag_quarter']!s:>5}/{run['lag_end']!s:<5}"
            )
        for run in result["latency"]:
            lines += ["", f"where the time goes at {run['rate']:g}/s (seconds per article)"]
            lines.append(f"  {'step':<46} {'p50':>7} {'p95':>7} {'mean':>7}")
            for name, value in run["stages"].items():
                lines.append(
                    f"  {name:<46} {value['p50']:>7.3f} {value['p95']:>7.3f} {value['mean']:>7.3f}"
                )
    if result.get("throughput"):
        t = result["throughput"]
        jl, wk = t["jsonl"], t["worker"]
        lines += [
            "",
            f"throughput over {t['jsonl']['articles']} articles ({t['jsonl']['words']} words)",
            f"  enrich --jsonl path   {jl['words_per_s']:>8,} words/s  {jl['seconds']} s"
            f"  (mean of runs before and after: {jl['runs_words_per_s']})",
            f"  end to end (1 worker) {wk['words_per_s']:>8,} words/s  {wk['seconds']} s",
            f"  ratio {t['ratio']:.3f} (target >= {TARGETS['throughput_ratio']})",
        ]
        if "profile" in wk:
            prof = wk["profile"]
            lines.append(f"  worker profile (py-spy, {prof['samples']} samples on the CPU):")
            lines.append("    own time:")
            lines += [f"      {share:6.1%}  {name}" for name, share in prof["own"][:10]]
            lines.append("    inclusive:")
            lines += [f"      {share:6.1%}  {name}" for name, share in prof["inclusive"][:15]]
    if result.get("scaleout"):
        s = result["scaleout"]
        lines += [
            "",
            f"scale-out on {s['one']['partitions']} partitions,"
            f" {s['one']['articles']} articles at once",
            f"  1 worker  {s['one']['words_per_s']:>8,} words/s  {s['one']['seconds']} s"
            f"  machine CPU busy {s['one']['cpu_busy']:.0%}",
            f"  2 workers {s['two']['words_per_s']:>8,} words/s  {s['two']['seconds']} s"
            f"  machine CPU busy {s['two']['cpu_busy']:.0%}",
            f"  ratio {s['ratio']:.2f}x (target >= {TARGETS['scaleout_ratio']}"
            " where the CPUs allow;"
            f" {result['cpus']} core(s) here, shared with Kafka, Elasticsearch and CoreNLP)",
        ]
    lines += ["", "targets: " + ", ".join(f"{k} {v}" for k, v in TARGETS.items())]
    return "\n".join(lines)


async def run(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    root = (Path(args.eval_dir) if args.eval_dir else eval_dir()) / BBC_DIR
    if not root.is_dir():
        raise SystemExit(f"bbc-dev not found at {root}; set NEWSWIRE_EVAL_DIR")
    corpus = Corpus.load(root)
    result: dict[str, Any] = {
        "cpus": len(os.sched_getaffinity(0)),
        "corpus_articles": len(corpus.items),
        "mean_words": round(statistics.fmean(corpus.words)),
        "worker_env": tuning_env(),
    }
    bench.up()
    if "latency" in args.sections:
        result["latency"] = []
        for rate in args.rates:
            bench.say(f"latency at {rate:g}/s, {args.count} articles")
            result["latency"].append(await bench.latency(corpus, rate, args.count))
            bench.say(json.dumps({k: v for k, v in result["latency"][-1].items() if k != "stages"}))
    total = min(args.throughput_count, len(corpus.items))
    if "throughput" in args.sections:
        # The --jsonl path runs before and after the worker, and their mean is the
        # baseline: on a shared machine the load drifts between runs.
        bench.say(f"throughput: enrich --jsonl over {total} articles")
        first = bench.jsonl_baseline(corpus, total)
        bench.say(f"throughput: end to end over {total} articles, 1 worker")
        worker = await bench.end_to_end(corpus, total, 1, "thru", args.partitions)
        bench.say(f"throughput: enrich --jsonl over {total} articles again")
        second = bench.jsonl_baseline(corpus, total)
        seconds = (first["seconds"] + second["seconds"]) / 2
        jsonl = {
            **first,
            "seconds": round(seconds, 2),
            "words_per_s": round(first["words"] / seconds),
            "runs_words_per_s": [first["words_per_s"], second["words_per_s"]],
        }
        result["throughput"] = {
            "jsonl": jsonl,
            "worker": worker,
            "ratio": round(worker["words_per_s"] / jsonl["words_per_s"], 3),
        }
    if "scaleout" in args.sections:
        one = result.get("throughput", {}).get("worker")
        if one is None:
            bench.say(f"scale-out: 1 worker, {total} articles")
            one = await bench.end_to_end(corpus, total, 1, "scale1", args.partitions)
        bench.say(f"scale-out: 2 workers, {total} articles")
        two = await bench.end_to_end(corpus, total, 2, "scale2", args.partitions)
        result["scaleout"] = {
            "one": one,
            "two": two,
            "ratio": round(two["words_per_s"] / one["words_per_s"], 3),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="articles per rate (default 300)")
    parser.add_argument("--rates", default="2,5,10", help="articles per second, comma-separated")
    parser.add_argument(
        "--throughput-count", type=int, default=1114, help="articles for throughput and scale-out"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sections", default="latency,throughput,scaleout")
    parser.add_argument(
        "--quick", action="store_true", help="60 articles per rate, 200 for throughput"
    )
    parser.add_argument("--home", default=str(REPO / ".newswire" / "bench"))
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running")
    parser.add_argument("--eval-dir", default=None)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the worker of the throughput run"
    )
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    args.sections = set(args.sections.split(","))
    if args.quick:
        args.count = min(args.count, 60)
        args.throughput_count = min(args.throughput_count, 200)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    bench = Bench(args)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        result = asyncio.run(run(bench, args))
    except KeyboardInterrupt:
        bench.say("interrupted")
        return 130
    finally:
        bench.down()
    result["logs"] = str(bench.runs_dir)
    text = json.dumps(result, indent=2) if args.json else report(result)
    print(text)
    (bench.runs_dir / "result.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

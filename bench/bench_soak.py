"""Soak benchmark of the story table (``make bench``): worker memory over 200,000 articles.

What runs, in this one process (the "worker"):

- the worker's NLP model: ``EnrichStage.enricher()`` with ``NEWSWIRE_NER_BACKEND=spacy`` (the
  in-process recogniser: spaCy's model, the lingua language detector, the alias and topic
  tables), warmed on a few articles, so the RSS figures include it. The soak articles are
  *not* enriched (that is CPU, not the memory under test, and would take hours);
- per batch, the worker's story path as ``EnrichStage.run`` runs it:
  ``drop_duplicates`` (exact duplicates, against the table and the batch), then
  ``assign_clusters`` (MinHash signature, LSH lookups, remember), then
  ``StoryTable.flush`` to real Kafka (acks=all); the table's follow loop reads the topic
  meanwhile, as in a worker;
- generated articles: texts drawn from a synthetic vocabulary (Zipf-like), with a share of
  near duplicates (5-20 % of an earlier article's words changed) and of exact copies
  (same text, other case and spacing, another id) of recent articles.

Kafka: a local broker (``workshop.stack.LocalStack``, Kafka only) under
``.newswire/bench`` on ports ``NEWSWIRE_TEST_PORT_BASE`` + 800/801 (default 29800/29801),
stopped at the end unless it was already running; ``--bootstrap`` uses another broker.

Prints, every 10,000 articles: RSS, table entries and estimated table MiB; then the RSS
growth per 10,000 articles before and after the bound is reached, peak RSS against the
1.0 GB goal, the estimate for the default bound, clustering quality (near duplicates
given their original's cluster, exact copies dropped, distinct articles merged into
another cluster) and the time a restart takes to load the table.

    .venv/bin/python bench/bench_soak.py [--articles 200000] [--max-entries 50000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NEWSWIRE_NER_BACKEND", "spacy")

import structlog  # noqa: E402

from pipeline.enrich.stories import StoryIndex  # noqa: E402
from pipeline.kafka.stories import StoryTable  # noqa: E402
from pipeline.models import RawArticle, Source  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.worker.batches import Worker  # noqa: E402
from pipeline.worker.story_clusters import assign_clusters, drop_duplicates  # noqa: E402

RSS_GOAL_MB = 1000.0  # "at most 1.0 GB"
SAMPLE_EVERY = 10_000
BENCH_HOME = REPO / ".newswire" / "bench"
DIST = REPO / ".newswire" / "dist"


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB, from /proc."""
    values = {}
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


class Articles:
    """Deterministic synthetic news: unique stories, near duplicates, exact copies."""

    def __init__(self, seed: int, near_share: float, copy_share: float, recent: int) -> None:
        self.rng = random.Random(seed)
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai")]
        vocabulary: set[str] = set()
        while len(vocabulary) < 40_000:
            vocabulary.add("".join(self.rng.choices(syllables, k=self.rng.randint(2, 4))))
        self.words = sorted(vocabulary)
        self.rng.shuffle(self.words)
        weights = [1.0 / (rank + 50) for rank in range(len(self.words))]
        total = 0.0
        self.cumulative = []
        for weight in weights:
            total += weight
            self.cumulative.append(total)
        self.near_share = near_share
        self.copy_share = copy_share
        self.recent: deque[RawArticle] = deque(maxlen=recent)  # kept originals to copy
        self.count = 0

    def _text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=n))

    def _mutate(self, text: str) -> str:
        words = text.split()
        rate = self.rng.uniform(0.05, 0.20)
        for _ in range(max(1, int(len(words) * rate))):
            i = self.rng.randrange(len(words))
            roll = self.rng.random()
            if roll < 0.6:
                words[i] = self.rng.choices(self.words, cum_weights=self.cumulative)[0]
            elif roll < 0.8 and len(words) > 20:
                del words[i]
            else:
                words.insert(i, self.rng.choices(self.words, cum_weights=self.cumulative)[0])
        return " ".join(words)

    def next(self) -> tuple[RawArticle, str, str | None]:
        """An article, its kind ("unique", "near", "copy") and the id it derives from."""
        self.count += 1
        article_id = uuid.UUID(int=self.rng.getrandbits(128)).hex
        roll = self.rng.random()
        if self.recent and roll < self.copy_share:
            original = self.rng.choice(self.recent)
            body = "  ".join(original.body.upper().split()) if original.body else None
            copy = RawArticle(
                id=article_id, title=original.title, body=body, source=Source(name="copier")
            )
            return copy, "copy", original.id
        if self.recent and roll < self.copy_share + self.near_share:
            original = self.rng.choice(self.recent)
            near = RawArticle(
                id=article_id,
                title=self._mutate(original.title or ""),
                body=self._mutate(original.body or ""),
                source=Source(name="rewriter"),
            )
            return near, "near", original.id
        article = RawArticle(
            id=article_id,
            title=self._text(self.rng.randint(6, 12)),
            body=self._text(self.rng.randint(80, 260)),
            source=Source(name="wire"),
        )
        return article, "unique", None

    def keep(self, article: RawArticle) -> None:
        self.recent.append(article)


@dataclass
class Quality:
    near: int = 0
    near_joined: int = 0
    copies: int = 0
    copies_dropped: int = 0
    unique: int = 0
    unique_merged: int = 0
    clusters: dict[str, str] = field(default_factory=dict)  # id -> cluster (recent only)


def bench_settings(args: argparse.Namespace) -> Settings:
    base = int(os.environ.get("NEWSWIRE_TEST_PORT_BASE", "29000"))
    port = base + 800
    return Settings(
        home=BENCH_HOME,
        kafka_port=port,
        kafka_controller_port=port + 1,
        kafka_heap="512m",
        kafka_bootstrap=args.bootstrap or f"127.0.0.1:{port}",
        topic_stories=f"bench.stories.{uuid.uuid4().hex[:8]}",
        topic_partitions=4,
        story_table_max_entries=args.max_entries,
        ner_backend="spacy",
    )


async def delete_topic(settings: Settings) -> None:
    """Delete the run's stories topic: each run writes ~170 MB of its own."""
    from aiokafka.admin import AIOKafkaAdminClient

    from pipeline.kafka.client import bootstrap, start_client
    from pipeline.kafka.security import client_options

    admin = AIOKafkaAdminClient(**client_options(settings, bootstrap(settings)))
    await start_client(admin, bootstrap(settings))
    try:
        await admin.delete_topics([settings.topic_stories])
    finally:
        await admin.close()


def warm_model(worker: Worker) -> float:
    """Load and use the worker's NLP model; returns the seconds it took."""
    started = time.monotonic()
    sample = RawArticle(
        id="warm",
        title="Kerry meets Putin in Moscow over Syria peace plan",
        body="John Kerry, the US Secretary of State, arrived in Moscow on Tuesday for a "
        "meeting with President Vladimir Putin and Foreign Minister Sergei Lavrov. " * 4,
    )
    results = worker.enrich_stage.enricher().enrich([sample])
    assert results[0].entities.person, "the NLP model found no person: is it loaded?"
    return time.monotonic() - started


async def soak(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    worker = Worker(settings)
    model_seconds = warm_model(worker)
    rss_model, _ = rss_mb()
    await worker.start()
    stories = await worker.enrich_stage.stories.start()
    assert worker.output.producer is not None
    rss_start, _ = rss_mb()
    # originals are recent enough to be held (the measure is clustering, not eviction)
    recent = min(5000, max(100, args.max_entries // 2))
    gen = Articles(args.seed, args.near_share, args.copy_share, recent)
    quality = Quality()
    samples: list[dict[str, float]] = [
        {"articles": 0, "rss_mb": rss_start, "entries": 0, "table_mb": 0.0, "seconds": 0.0}
    ]
    started = time.monotonic()
    bound_reached_at: int | None = None
    done = 0
    while done < args.articles:
        # batches end on the sampling points, so samples fall every 10,000 articles
        size = min(args.batch, args.articles - done, SAMPLE_EVERY - done % SAMPLE_EVERY)
        batch = [gen.next() for _ in range(size)]
        articles = [article for article, _, _ in batch]
        kept = drop_duplicates(articles, stories)
        clusters = dict(zip((a.id for a, _ in kept), assign_clusters(kept, stories), strict=True))
        await stories.flush(worker.output.producer)
        for article, kind, origin in batch:
            cluster = clusters.get(article.id)
            if kind == "copy":
                quality.copies += 1
                quality.copies_dropped += cluster is None
                continue
            if cluster is None:
                continue  # a generated text that happens to equal another: rare
            gen.keep(article)
            quality.clusters[article.id] = cluster
            if kind == "near":
                quality.near += 1
                quality.near_joined += (
                    origin is not None and quality.clusters.get(origin) == cluster
                )
            else:
                quality.unique += 1
                quality.unique_merged += cluster != article.id
        if len(quality.clusters) > 20_000:  # only recent originals are copied
            for key in list(quality.clusters)[:10_000]:
                del quality.clusters[key]
        done += size
        index_full = len(stories.index) >= stories.index.capacity
        if bound_reached_at is None and (index_full or stories.index.evicted["bound"]):
            bound_reached_at = done
        if done % SAMPLE_EVERY == 0 or done == args.articles:
            await asyncio.sleep(0)  # let the follow loop run
            rss, _ = rss_mb()
            samples.append(
                {
                    "articles": done,
                    "rss_mb": rss,
                    "entries": len(stories.index),
                    "table_mb": stories.index.nbytes() / 2**20,
                    "seconds": time.monotonic() - started,
                }
            )
            if not args.json:
                s = samples[-1]
                print(
                    f"{done:>9,} articles  RSS {s['rss_mb']:7.1f} MiB  "
                    f"table {s['entries']:>8,} entries {s['table_mb']:6.1f} MiB  "
                    f"{s['seconds']:6.0f} s",
                    flush=True,
                )
    elapsed = time.monotonic() - started
    _, peak_soak = rss_mb()
    index = stories.index
    per_entry = index.nbytes() / max(1, len(index))
    capacity, evicted = index.capacity, dict(index.evicted)
    await worker.stop()
    del stories, index  # the restarted table below replaces it, as in a new process

    # restart: a new table loads the topic's tail (at most the bound)
    window = settings.story_window_days * 86_400
    restarted = StoryTable(
        settings, settings.topic_stories, StoryIndex(args.max_entries, ttl_seconds=window)
    )
    load_started = time.monotonic()
    await restarted.start()
    load_seconds = time.monotonic() - load_started
    loaded, loaded_entries = restarted.loaded, len(restarted.index)
    await restarted.stop()
    await delete_topic(settings)

    _, peak = rss_mb()
    return {
        "articles": args.articles,
        "batch": args.batch,
        "max_entries": capacity,
        "seconds": round(elapsed, 1),
        "articles_per_s": round(args.articles / elapsed),
        "model_load_seconds": round(model_seconds, 1),
        "rss_after_model_mb": round(rss_model, 1),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(peak_soak, 1),
        "peak_rss_with_restart_mb": round(peak, 1),
        "bound_reached_at": bound_reached_at,
        "table_bytes_per_entry": round(per_entry),
        "samples": samples,
        "quality": {
            "near_duplicates": quality.near,
            "near_joined_original": quality.near_joined,
            "exact_copies": quality.copies,
            "exact_copies_dropped": quality.copies_dropped,
            "unique": quality.unique,
            "unique_merged": quality.unique_merged,
        },
        "restart": {
            "records_read": loaded,
            "entries": loaded_entries,
            "seconds": round(load_seconds, 2),
        },
        "evicted": evicted,
    }


def slope(samples: list[dict[str, float]], since: int) -> float | None:
    """Least-squares RSS growth in MiB per 10,000 articles over samples from ``since``."""
    points = [(s["articles"], s["rss_mb"]) for s in samples if s["articles"] >= since]
    if len(points) < 3:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return cov / var * SAMPLE_EVERY


def report(result: dict[str, Any], default_entries: int) -> None:
    samples = result["samples"]
    cap = result["max_entries"]
    print()
    print(f"{'articles':>9} {'RSS MiB':>8} {'+/10k':>7} {'entries':>9} {'table MiB':>9}")
    previous = None
    for s in samples:
        delta = "" if previous is None else f"{s['rss_mb'] - previous:+7.1f}"
        print(
            f"{s['articles']:>9,} {s['rss_mb']:8.1f} {delta:>7} {s['entries']:>9,} "
            f"{s['table_mb']:9.1f}"
        )
        previous = s["rss_mb"]
    # warm-up: until the table is full, plus one generation for the first drops
    warm = (result["bound_reached_at"] or result["articles"]) + cap // 8
    before = slope(samples, 0)
    filling = [s for s in samples if s["articles"] <= (result["bound_reached_at"] or 0)]
    fill_slope = slope(filling, 0) if len(filling) >= 3 else before
    after = slope(samples, warm)
    q = result["quality"]
    peak = result["peak_rss_mb"]
    per_entry = result["table_bytes_per_entry"]
    default_mb = default_entries * per_entry / 2**20
    fill_mb_per_entry = None
    if fill_slope is not None:
        fill_mb_per_entry = fill_slope / SAMPLE_EVERY
    print()
    bound = result["bound_reached_at"]
    bound_text = f"{cap:,} entries, " + (
        f"reached at {bound:,} articles" if bound else "not reached"
    )
    filling_text = "n/a" if fill_slope is None else f"{fill_slope:+.1f} MiB per 10k articles"
    after_text = (
        "n/a (too few samples)"
        if after is None
        else f"{after:+.1f} MiB per 10k articles (from {warm:,} articles)"
    )
    flat = "n/a"
    if after is not None and fill_slope is not None:
        flat = "yes" if abs(after) <= max(1.0, 0.1 * abs(fill_slope)) else "NO"
    entry_text = f"{per_entry} B estimated"
    if fill_mb_per_entry is not None:
        entry_text += f", {fill_mb_per_entry * 2**20:.0f} B of RSS while filling"
    restart = result["restart"]
    rows = [
        ("articles", f"{result['articles']:,} in {result['seconds']:.0f} s "
         f"({result['articles_per_s']:,}/s, batches of {result['batch']})"),
        ("table bound (bench)", bound_text),
        ("RSS after the NLP model", f"{result['rss_after_model_mb']:.0f} MiB "
         f"(loaded in {result['model_load_seconds']:.0f} s)"),
        ("RSS with Kafka clients", f"{result['rss_start_mb']:.0f} MiB"),
        ("RSS growth while filling", filling_text),
        ("RSS growth after warm-up", after_text),
        ("slope flattens", flat),
        ("peak RSS", f"{peak:.0f} MiB, goal <= {RSS_GOAL_MB:.0f} "
         f"{'ok' if peak <= RSS_GOAL_MB else 'MISSED'}"),
        ("peak RSS with restart", f"{result['peak_rss_with_restart_mb']:.0f} MiB (a second table "
         "loaded in the same process)"),
        ("table memory per entry", entry_text),
        ("default bound", f"{default_entries:,} entries -> ~{default_mb:.0f} MiB table, "
         f"~{result['rss_start_mb'] + default_mb:.0f} MiB worker"),
        ("near duplicates", f"{q['near_joined_original']:,} of {q['near_duplicates']:,} got their "
         f"original's cluster ({q['near_joined_original'] / max(1, q['near_duplicates']):.1%})"),
        ("exact copies", f"{q['exact_copies_dropped']:,} of {q['exact_copies']:,} dropped "
         f"({q['exact_copies_dropped'] / max(1, q['exact_copies']):.1%})"),
        ("distinct articles merged", f"{q['unique_merged']:,} of {q['unique']:,} "
         f"({q['unique_merged'] / max(1, q['unique']):.2%}) joined another cluster"),
        ("restart load", f"{restart['records_read']:,} records -> "
         f"{restart['entries']:,} entries in {restart['seconds']:.1f} s"),
        ("evicted", ", ".join(f"{k} {v:,}" for k, v in result["evicted"].items())),
    ]  # fmt: skip
    for name, value in rows:
        print(f"{name:<26} {value}")


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--max-entries", type=int, default=50_000, help="the bench's bound")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--near-share", type=float, default=0.10)
    parser.add_argument("--copy-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    settings = bench_settings(args)
    signal.signal(signal.SIGTERM, _terminated)  # so a killed run still stops its broker
    local = None
    started_here = False
    if not args.bootstrap:
        from workshop.stack import LocalStack

        local = LocalStack(settings, dist_dir=DIST, services=("kafka",))
        started_here = not local.status().healthy
        if started_here:
            print(f"starting Kafka on {settings.kafka_bootstrap} ({BENCH_HOME})", file=sys.stderr)
        local.up()
    try:
        result = asyncio.run(soak(args, settings))
    finally:
        if local is not None and started_here:
            local.down()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result, Settings.model_fields["story_table_max_entries"].default)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

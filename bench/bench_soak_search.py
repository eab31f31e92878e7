"""Soak of the story table kept in the search engine (``pipeline/sinks/story_table.py``): worker
memory and clustering quality over 200,000 articles, with 1 and 3 workers.

Each worker is a process of its own that runs the worker's story path per batch: prefetch
(one msearch, one search), ``drop_duplicates``, ``assign_clusters``
(pipeline/worker/story_clusters.py), flush (one bulk request), on its own deterministic
stream of bench_soak's synthetic articles (10 % near duplicates, 5 % exact copies) and
its share of the articles. All workers write one story index prefix on one local
Elasticsearch node (``.newswire/bench-soak-search``, ports
``NEWSWIRE_BENCH_PORT_BASE`` + 850/860). Each worker reports its RSS every 10,000
articles: what it holds is its batch's view and the grace index of its own last writes
(bounded), so the RSS should stay flat and the same whatever the number of workers.

Quality is measured per worker on its own stream (the near duplicates of a stream derive
from its own originals). Near duplicates across workers meet through the engine too (see
tests/integration/sinks/test_stories.py), once the index has refreshed (1 s): two
copies of a story handled by two workers within that second can get two clusters, as with
the Kafka-replicated table before (its followers applied records as they read them).

    .venv/bin/python bench/bench_soak_search.py [--articles 200000] [--workers 1 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import structlog  # noqa: E402
from bench_soak import SAMPLE_EVERY, Articles, Quality, rss_mb  # noqa: E402

from pipeline.enrich.dedup import fingerprint, normalize_text, story_signature  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sinks.elasticsearch import ElasticsearchBackend  # noqa: E402
from pipeline.sinks.story_table import SearchStoryStore  # noqa: E402
from pipeline.worker.story_clusters import (  # noqa: E402
    DEDUP_MIN_WORDS,
    assign_clusters,
    drop_duplicates,
)

HOME = REPO / ".newswire" / "bench-soak-search"
DIST = REPO / ".newswire" / "dist"


def node_settings(base: int) -> Settings:
    return Settings(
        home=HOME,
        search_port=base + 850,
        search_transport_port=base + 860,
        search_heap="768m",
        elasticsearch_url=f"http://127.0.0.1:{base + 850}",
    )


async def one_worker(args: argparse.Namespace) -> dict[str, Any]:
    """The story path of one worker over its share of the articles."""
    backend = ElasticsearchBackend(Settings(), args.url)
    store = SearchStoryStore(backend, args.prefix, window_seconds=7 * 86_400)
    await store.install()
    gen = Articles(args.seed, args.near_share, args.copy_share, 5000)
    quality = Quality()
    rss_start, _ = rss_mb()
    samples = [{"articles": 0, "rss_mb": rss_start, "seconds": 0.0}]
    started = time.monotonic()
    done = 0
    while done < args.articles:
        size = min(args.batch, args.articles - done, SAMPLE_EVERY - done % SAMPLE_EVERY)
        batch = [gen.next() for _ in range(size)]
        articles = [a for a, _, _ in batch]
        sigs, fps = [], []
        for a in articles:
            parts = (a.title, a.summary, a.body)
            words = sum(len(normalize_text(p).split()) for p in parts if p)
            fps.append(fingerprint(*parts) if words >= DEDUP_MIN_WORDS else None)
            sigs.append(story_signature(a.title, a.summary, a.body))
        await store.prefetch(sigs, fps)
        kept = drop_duplicates(articles, store)
        clusters = dict(zip((a.id for a, _ in kept), assign_clusters(kept, store), strict=True))
        await store.flush()
        for article, kind, origin in batch:
            cluster = clusters.get(article.id)
            if kind == "copy":
                quality.copies += 1
                quality.copies_dropped += cluster is None
                continue
            if cluster is None:
                continue
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
        if len(quality.clusters) > 20_000:
            for key in list(quality.clusters)[:10_000]:
                del quality.clusters[key]
        done += size
        if done % SAMPLE_EVERY == 0 or done == args.articles:
            rss, _ = rss_mb()
            samples.append({"articles": done, "rss_mb": rss, "seconds": time.monotonic() - started})
    await backend.close()
    _, peak = rss_mb()
    return {
        "articles": args.articles,
        "seconds": round(time.monotonic() - started, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(samples[-1]["rss_mb"], 1),
        "peak_rss_mb": round(peak, 1),
        "rss_growth_mb": round(samples[-1]["rss_mb"] - samples[1]["rss_mb"], 1)
        if len(samples) > 2
        else 0.0,
        "unprefetched": store.unprefetched,
        "quality": {
            "near_duplicates": quality.near,
            "near_joined_original": quality.near_joined,
            "exact_copies": quality.copies,
            "exact_copies_dropped": quality.copies_dropped,
            "unique": quality.unique,
            "unique_merged": quality.unique_merged,
        },
    }


def run_workers(args: argparse.Namespace, url: str, workers: int) -> list[dict[str, Any]]:
    """``workers`` processes sharing ``args.articles`` and one story index prefix."""
    prefix = f"bench-stories-{uuid.uuid4().hex[:8]}"
    share = args.articles // workers
    procs = [
        subprocess.Popen(
            [
                sys.executable, __file__, "--worker", "--url", url, "--prefix", prefix,
                "--articles", str(share), "--seed", str(args.seed + n), "--batch",
                str(args.batch),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]  # fmt: skip
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed ({proc.returncode})")
        results.append(json.loads(out))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--near-share", type=float, default=0.10)
    parser.add_argument("--copy-share", type=float, default=0.05)
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.worker:
        print(json.dumps(asyncio.run(one_worker(args))))
        return 0
    from workshop.stack import LocalStack

    local = LocalStack(node_settings(args.port_base), dist_dir=DIST, services=("search",))
    started_here = not local.status().healthy
    status = local.up()
    try:
        runs = {n: run_workers(args, status.search.endpoint, n) for n in args.workers}
    finally:
        if started_here:
            local.down()
    summary: dict[str, Any] = {"articles": args.articles, "runs": {}}
    for n, results in runs.items():
        q = {k: sum(r["quality"][k] for r in results) for k in results[0]["quality"]}
        summary["runs"][n] = {
            "workers": n,
            "articles_per_s": round(
                sum(r["articles"] for r in results) / max(r["seconds"] for r in results)
            ),
            "rss_end_mb": [r["rss_end_mb"] for r in results],
            "rss_growth_mb": [r["rss_growth_mb"] for r in results],
            "near_joined_share": round(q["near_joined_original"] / max(1, q["near_duplicates"]), 5),
            "unique_merged": q["unique_merged"],
            "copies_dropped_share": round(q["exact_copies_dropped"] / max(1, q["exact_copies"]), 5),
            "unprefetched": sum(r["unprefetched"] for r in results),
            "quality": q,
        }
    print(json.dumps(summary, indent=2) if args.json else summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

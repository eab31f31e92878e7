"""Poller benchmark: one poll cycle over N feeds served on loopback (default 1,000).

Reports feeds/s for
- the naive baseline: a sequential ``feedparser.parse(url)`` loop over the same URLs,
- the poller's full-parse path (first cycle: fetch, parse in a process pool, map to
  articles, publish to a null sink),
- the poller's 304 path (second cycle: conditional requests answered 304),
and the ratios against the baseline, measured in the same run. The feed server runs in
its own process so it does not share the poller's GIL. Kafka is not involved (publishing
goes to a counter): this measures the poller, not the broker.

    .venv/bin/python bench/bench_poller.py [--feeds 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import feedparser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.logs import configure  # noqa: E402
from pipeline.models import RawArticle  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sources.feeds import FeedConfig  # noqa: E402
from pipeline.sources.poller import Poller  # noqa: E402
from pipeline.sources.state import MemoryStateStore  # noqa: E402


def start_server(count: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "fixtures" / "feeds_server.py"),
            "--bench",
            str(count),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, list(info["urls"])


def naive(urls: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    entries = 0
    for url in urls:
        entries += len(feedparser.parse(url).entries)
    return time.perf_counter() - start, entries


async def poller_cycles(urls: list[str], concurrency: int) -> dict[str, Any]:
    published = 0

    async def sink(articles: list[RawArticle]) -> int:
        nonlocal published
        published += len(articles)
        return len(articles)

    config = Settings(
        allow_private_feeds=True,
        poll_concurrency=concurrency,
        poll_per_host=concurrency,  # every bench feed is on the one loopback host
        poll_host_gap=0,
        poller_metrics_port=0,
    )
    feeds = [FeedConfig(url=u) for u in urls]
    poller = Poller(config, feeds, sink, MemoryStateStore())
    try:
        await poller.load_state()
        # Warm the parse pool (process start-up is not a per-cycle cost).
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(poller.pool.executor, sum, [1]) for _ in range(8))
        )
        start = time.perf_counter()
        full = await poller.run_once()
        full_s = time.perf_counter() - start
        start = time.perf_counter()
        cond = await poller.run_once()
        cond_s = time.perf_counter() - start
        errors = Counter(s.last_error for s in poller.states.values() if s.last_error)
    finally:
        await poller.close()
    if errors:
        print("errors:", errors.most_common(5), file=sys.stderr)
    assert full.failed == 0 and cond.failed == 0, (full, cond)
    assert cond.not_modified == len(urls), cond
    return {"full_s": full_s, "cond_s": cond_s, "published": published}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    configure("INFO")  # as the poller runs in production (per-feed debug lines are off)
    proc, urls = start_server(args.feeds)
    try:
        naive_s, naive_entries = naive(urls)
        result = asyncio.run(poller_cycles(urls, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    n = len(urls)
    report = {
        "feeds": n,
        "naive_feeds_per_s": round(n / naive_s, 1),
        "naive_entries": naive_entries,
        "full_parse_feeds_per_s": round(n / result["full_s"], 1),
        "not_modified_feeds_per_s": round(n / result["cond_s"], 1),
        "full_parse_ratio": round(naive_s / result["full_s"], 2),
        "not_modified_ratio": round(naive_s / result["cond_s"], 2),
        "articles_published": result["published"],
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:28s} {value}")
        print(
            "targets: full-parse >= 2x naive -> "
            + ("ok" if report["full_parse_ratio"] >= 2 else "MISSED")
            + "; 304 path >= 500 feeds/s -> "
            + ("ok" if report["not_modified_feeds_per_s"] >= 500 else "MISSED")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

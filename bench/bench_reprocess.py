"""``reprocess`` throughput against the worker's, on the same articles (``make bench``;
issue 17).

Self-contained like ``bench_latency.py`` (whose stack, worker and corpus helpers it uses):
its own local stack in ``.newswire/bench`` (``--port-base``, NEWSWIRE_BENCH_PORT_BASE; a
healthy stack there is reused), bbc-dev articles.

1. Worker: a warm ``newswire worker`` subprocess; ``--count`` articles produced at once
   to the raw topic; seconds until the index holds them all (counted every 0.5 s).
2. Reprocess: the same index re-enriched by :class:`pipeline.worker.reprocess.Reprocessor`
   in this process (point in time, the same CoreNLP server and NLP thread count, writes
   through the sink's indexer with ``refresh=true`` like the worker's default).

Prints articles/s of both and the ratio (target >= 0.8: "close to the worker's"). Never a
test: it fails only when something breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import structlog  # noqa: E402
from bench_latency import REPO, Bench, Corpus, isolated  # noqa: E402

from pipeline.enrich.enricher import Enricher  # noqa: E402
from pipeline.enrich.recogniser import corenlp_url, make_recogniser  # noqa: E402
from pipeline.provision import run_setup  # noqa: E402
from pipeline.sinks.engines import open_backend  # noqa: E402
from pipeline.worker.reprocess import Reprocessor, Selection  # noqa: E402
from workshop.evaluation import BBC_DIR, eval_dir  # noqa: E402

RATIO_TARGET = 0.8


async def run(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.eval_dir) if args.eval_dir else eval_dir()
    corpus = Corpus.load(root / BBC_DIR)
    bench.up()
    settings = isolated(bench.settings, "reprocess", topic_partitions=args.partitions)
    await run_setup(settings)
    workers = bench.start_workers(settings, 1, "reprocess")
    try:
        await bench.wait_members(settings, 1)
        await bench.warm_up(settings, corpus, workers)
        articles = corpus.articles("rp", args.count)
        before = await bench.count(settings)
        watcher = asyncio.create_task(
            bench.watch_count(settings, before + args.count, 1800, workers)
        )
        started = time.time()
        await bench.produce(settings, articles, None)
        worker_seconds = await watcher - started
    finally:
        bench.stop_workers(workers)
    backend = open_backend(settings)
    try:
        local = settings.model_copy(update={"corenlp_url": corenlp_url(settings)})
        enricher = Enricher(recogniser=make_recogniser(local))
        enricher.enrich([a.raw for a in articles[:8]])  # warm, as the worker was
        bench.say(f"reprocessing {before + args.count} articles")
        report = await Reprocessor(
            backend, settings.index_alias, enricher, threads=settings.nlp_threads
        ).run(Selection())
    finally:
        await backend.close()
        await bench.drop(settings)
    worker_rate = args.count / worker_seconds
    return {
        "articles": args.count,
        "worker_seconds": round(worker_seconds, 2),
        "worker_articles_per_s": round(worker_rate, 1),
        "reprocess_articles": report.done,
        "reprocess_seconds": round(report.seconds, 2),
        "reprocess_articles_per_s": round(report.rate, 1),
        "ratio": round(report.rate / worker_rate, 2),
        "target": RATIO_TARGET,
        "nlp_threads": settings.nlp_threads,
        "failed": len(report.failed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=600, help="articles (default 600)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--home", default=str(REPO / ".newswire" / "bench"))
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the stack running")
    parser.add_argument("--eval-dir", default=None)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    args.profile = False
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    root = Path(args.eval_dir) if args.eval_dir else eval_dir()
    if not (root / BBC_DIR).is_dir():
        print(f"bbc-dev not found under {root}; set NEWSWIRE_EVAL_DIR", file=sys.stderr)
        return 2
    bench = Bench(args)
    try:
        result = asyncio.run(run(bench, args))
    finally:
        bench.down()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"worker:    {result['worker_articles_per_s']:>7} articles/s "
        f"({result['articles']} in {result['worker_seconds']} s)\n"
        f"reprocess: {result['reprocess_articles_per_s']:>7} articles/s "
        f"({result['reprocess_articles']} in {result['reprocess_seconds']} s)\n"
        f"ratio:     {result['ratio']:>7} (target >= {RATIO_TARGET})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

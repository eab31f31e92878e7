"""Worker enrichment throughput with two CoreNLP servers against one (``make bench``).

Starts two local CoreNLP servers (``.newswire/bench-corenlp-{1,2}``, ports base+510 and
base+511, ``NEWSWIRE_BENCH_PORT_BASE``), then enriches the same bbc-dev articles the way a
worker does (batches of ``NEWSWIRE_BATCH_SIZE`` cut into parts enriched on
``NEWSWIRE_NLP_THREADS`` threads) with the recogniser given one URL, then both. The runs
alternate (one, two, one, two, ...) so the machine's other load hits both alike; the best
round of each is compared. Prints articles/s, the ratio two/one, the share of requests each
server took and the CPU seconds each server used.

On a 2-core machine the ceiling is low: one server runs one annotation thread, the worker
needs CPU too, so the ratio says how much of the servers' share was the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import structlog

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout

from pipeline.enrich.corenlp import CoreNLPRecogniser  # noqa: E402
from pipeline.enrich.enricher import Enricher, count_words  # noqa: E402
from pipeline.models import RawArticle  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from workshop.evaluation.harness import BBC_DIR, eval_dir, read_bbc  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def corenlp_server(home: Path, port: int) -> Iterator[tuple[str, int]]:
    """A local CoreNLP server on ``port`` (started here, stopped on exit): (url, pid)."""
    from workshop.stack.corenlp import CoreNLPServer
    from workshop.stack.java import find_jdk
    from workshop.stack.process import is_alive, stop_process

    settings = Settings(home=home, corenlp_port=port)
    server = CoreNLPServer(settings, home, REPO / ".newswire" / "dist")
    if server.probe().healthy:
        raise SystemExit(f"port {port} already runs a CoreNLP server: stop it or move the base")
    pid = server.start(find_jdk(*server.java_range, purpose="CoreNLP bench"))
    try:
        deadline = time.monotonic() + server.start_timeout
        while not server.probe(timeout=2.0).healthy:
            if not is_alive(pid) or time.monotonic() > deadline:
                raise SystemExit(f"CoreNLP did not start; see {server.log_file}")
            time.sleep(0.5)
        yield server.url, pid
    finally:
        stop_process(pid, timeout=server.stop_timeout, marker=server.marker_for())


def split_evenly(items: list[RawArticle], parts: int) -> list[list[RawArticle]]:
    """``items`` in ``parts`` contiguous slices (the worker's cut of a batch)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            out.append(items[start:end])
        start = end
    return out


def run(
    articles: list[RawArticle], urls: list[str], batch_size: int, threads: int
) -> tuple[float, dict[str, int]]:
    """Seconds to enrich ``articles`` worker-style against ``urls``; requests per server."""
    recogniser = CoreNLPRecogniser(urls)
    enricher = Enricher(recogniser=recogniser)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for i in range(0, len(articles), batch_size):
            parts = split_evenly(articles[i : i + batch_size], threads * 4)
            for _ in pool.map(enricher.enrich, parts):
                pass
    return time.perf_counter() - started, recogniser.pool.requests()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=400, help="articles per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    settings = Settings()
    root = eval_dir() / BBC_DIR
    if not root.is_dir():
        print(f"bbc-dev not found at {root}; set NEWSWIRE_EVAL_DIR", file=sys.stderr)
        return 2
    items = read_bbc(root)[: args.limit]
    articles = [RawArticle(id=f"{c}/{n}", title=t, body=b) for c, n, t, b in items]
    words = sum(count_words(a.title or "") + count_words(a.body or "") for a in articles)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                corenlp_server(REPO / ".newswire" / f"bench-corenlp-{n}", args.port_base + 509 + n)
            )
            for n in (1, 2)
        ]
        urls = [url for url, _ in servers]
        for url in urls:  # warm both JVMs alike
            run(articles[:48], [url], settings.batch_size, settings.nlp_threads)
        configs = {
            "one server": ([urls[0]], settings.nlp_threads),
            "two servers": (urls, settings.nlp_threads),
            "two servers, 2x threads": (urls, settings.nlp_threads * 2),
        }
        best: dict[str, float] = {}
        shares: dict[str, dict[str, int]] = {}
        cpu: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, (config_urls, threads) in configs.items():
                before = [cpu_seconds(pid) for _, pid in servers]
                seconds, served = run(articles, config_urls, settings.batch_size, threads)
                after = [cpu_seconds(pid) for _, pid in servers]
                if seconds < best.get(name, float("inf")):
                    best[name] = seconds
                    shares[name] = served
                    cpu[name] = [round(b - a, 1) for a, b in zip(before, after, strict=True)]
    result = {
        "articles": len(articles),
        "words": words,
        "batch_size": settings.batch_size,
        "nlp_threads": settings.nlp_threads,
        "runs": {
            name: {
                "articles_per_s": round(len(articles) / seconds, 1),
                "words_per_s": round(words / seconds),
                "requests_per_server": list(shares[name].values()),
                "server_cpu_s": cpu[name],
            }
            for name, seconds in best.items()
        },
        "ratio_two_over_one": round(best["one server"] / best["two servers"], 2),
        "ratio_two_2x_threads_over_one": round(
            best["one server"] / best["two servers, 2x threads"], 2
        ),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, figures in result["runs"].items():  # type: ignore[attr-defined]
            print(f"{name:26s} {figures}")
        print(
            f"two/one: {result['ratio_two_over_one']}x, "
            f"two with 2x threads/one: {result['ratio_two_2x_threads_over_one']}x "
            f"({result['cpus']} CPUs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak of the story table (``make bench``): worker memory and clustering quality over
200,000 articles, with 1 and with 3 worker processes sharing the story table in the
search engine (``pipeline/sinks/story_table.py``).

What runs in each worker process, per batch: the worker's story path as
``EnrichStage.run`` runs it, :func:`pipeline.worker.story_clusters.story_batch` (one
msearch and one search against the shared table, exact duplicates dropped, clusters
assigned, one bulk write). The articles are *not* enriched (that is CPU, not the memory
under test). One deterministic stream of synthetic articles (a Zipf-like vocabulary; 10 %
near duplicates: 5-20 % of an earlier article's words changed; 5 % exact copies: same text,
other case and spacing, another id) is dealt out to the workers round-robin, as a topic's
partitions would be: with 3 workers, two thirds of the near duplicates and copies meet an
original another process handled. A near duplicate or copy derives from one of the 5,000
most recent originals but not from the newest ``--lag`` (2,000): in a feed the copies of a
story come seconds to hours later, and the workers must not be compared while one is a few
batches behind another.

Each worker samples its RSS every 10,000 articles and writes its verdicts (id, kind,
original, cluster, when its batch was looked up and written) to a file; quality is counted
over all of them at the end: near duplicates given their original's cluster, exact copies
dropped, distinct articles merged into another cluster (wrongly); a derived article whose
original was not yet written and searchable when it was looked up (a worker ran ahead of
another by more than the lag) is counted apart with its original. What a worker holds is
its batch's view and the grace index of its own last seconds of writes, so its RSS should
stay flat and be the same whatever the number of workers.

Elasticsearch: one local node (``workshop.stack.LocalStack``, search only) under
``.newswire/bench-soak`` on ports ``NEWSWIRE_BENCH_PORT_BASE`` + 850/860 (default
36850/36860), stopped at the end unless it was already running; ``--url`` uses another.

    .venv/bin/python bench/bench_soak.py [--articles 200000] [--workers 1 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import structlog  # noqa: E402

from pipeline.errors import RetryableError  # noqa: E402
from pipeline.models import RawArticle, Source  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sinks.elasticsearch import ElasticsearchBackend  # noqa: E402
from pipeline.sinks.story_table import SearchStoryStore  # noqa: E402
from pipeline.worker.story_clusters import story_batch  # noqa: E402

SAMPLE_EVERY = 10_000
#: RSS samples before this many articles (per worker) are warm-up.
WARM_UP = 20_000
HOME = REPO / ".newswire" / "bench-soak"
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

    def __init__(
        self, seed: int, near_share: float, copy_share: float, recent: int, lag: int
    ) -> None:
        self.rng = random.Random(seed)
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai")]
        vocabulary: set[str] = set()
        while len(vocabulary) < 40_000:
            vocabulary.add("".join(self.rng.choices(syllables, k=self.rng.randint(2, 4))))
        self.words = sorted(vocabulary)
        self.rng.shuffle(self.words)
        total = 0.0
        self.cumulative = []
        for rank in range(len(self.words)):
            total += 1.0 / (rank + 50)
            self.cumulative.append(total)
        self.near_share = near_share
        self.copy_share = copy_share
        self.lag = lag
        self.recent: deque[RawArticle] = deque(maxlen=recent + lag)  # originals to derive from

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

    def _origin(self) -> RawArticle | None:
        older = len(self.recent) - self.lag
        return self.recent[self.rng.randrange(older)] if older > 0 else None

    def next(self) -> tuple[RawArticle, str, str | None]:
        """An article, its kind ("unique", "near", "copy") and the id it derives from."""
        article_id = uuid.UUID(int=self.rng.getrandbits(128)).hex
        roll = self.rng.random()
        origin = self._origin()
        if origin is not None and roll < self.copy_share:
            body = "  ".join(origin.body.upper().split()) if origin.body else None
            copy = RawArticle(
                id=article_id, title=origin.title, body=body, source=Source(name="copier")
            )
            return copy, "copy", origin.id
        if origin is not None and roll < self.copy_share + self.near_share:
            near = RawArticle(
                id=article_id,
                title=self._mutate(origin.title or ""),
                body=self._mutate(origin.body or ""),
                source=Source(name="rewriter"),
            )
            self.recent.append(near)
            return near, "near", origin.id
        article = RawArticle(
            id=article_id,
            title=self._text(self.rng.randint(6, 12)),
            body=self._text(self.rng.randint(80, 260)),
            source=Source(name="wire"),
        )
        self.recent.append(article)
        return article, "unique", None


async def one_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Worker ``args.index`` of ``args.of``: the story path over its share of the stream."""
    backend = ElasticsearchBackend(Settings(), args.url)
    store = SearchStoryStore(backend, args.prefix, window_seconds=7 * 86_400)
    gen = Articles(args.seed, args.near_share, args.copy_share, 5000, args.lag)
    rss_start, _ = rss_mb()
    samples = [{"articles": 0, "rss_mb": rss_start, "seconds": 0.0}]
    started = time.monotonic()
    story_seconds = 0.0
    retries = 0
    done = 0
    position = 0  # in the whole stream
    with Path(args.out).open("w", encoding="utf-8") as out:  # noqa: ASYNC230 (a bench)
        while position < args.articles:
            batch: list[tuple[RawArticle, str, str | None]] = []
            while len(batch) < args.batch and position < args.articles:
                item = gen.next()
                if position % args.of == args.index:
                    batch.append(item)
                position += 1
                if (done + len(batch)) % SAMPLE_EVERY == 0 and batch:
                    break  # samples fall every 10,000 articles of this worker
            if not batch:
                continue
            began = time.monotonic()
            looked_up = time.time()
            while True:
                try:
                    result = await story_batch([a for a, _, _ in batch], store)
                    break
                except RetryableError as exc:  # as the worker does (it backs off)
                    store.discard()
                    retries += 1
                    print(f"retry: {exc}", file=sys.stderr, flush=True)
                    await asyncio.sleep(1.0)
            story_seconds += time.monotonic() - began
            written = time.time()
            clusters = {a.id: c for (a, _), c in zip(result.kept, result.clusters, strict=True)}
            for article, kind, origin in batch:
                out.write(
                    f"{article.id} {kind} {origin or '-'} {clusters.get(article.id, '-')} "
                    f"{looked_up:.3f} {written:.3f}\n"
                )
            done += len(batch)
            if done % SAMPLE_EVERY == 0 or position >= args.articles:
                rss, _ = rss_mb()
                samples.append(
                    {"articles": done, "rss_mb": rss, "seconds": time.monotonic() - started}
                )
                print(f"worker {args.index}/{args.of}: {samples[-1]}", file=sys.stderr, flush=True)
    await backend.close()
    _, peak = rss_mb()
    return {
        "articles": done,
        "seconds": round(time.monotonic() - started, 1),
        "story_seconds": round(story_seconds, 1),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(peak, 1),
        "samples": samples,
        "unprefetched": store.unprefetched,
        "retries": retries,
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


#: Seconds after its batch was written that an original is surely searchable (refresh 1 s).
VISIBLE_AFTER = 1.5


def quality(paths: list[Path]) -> dict[str, int]:
    """Counts over every worker's verdicts ("id kind origin cluster looked-up written"
    lines). A near duplicate or copy whose original's batch was not yet written and
    searchable when its own batch was looked up (workers drift apart: one may run ahead of
    another by more than ``--lag`` articles of the stream) is counted apart, as
    ``out_of_order``, and so is an original handled after one of its derived articles: the
    story table sees arrival order, and the later article rightly joins the earlier."""
    cluster: dict[str, str] = {}
    times: dict[str, tuple[float, float]] = {}
    rows: list[tuple[str, str, str]] = []
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                article, kind, origin, found, looked_up, written = line.split()
                cluster[article] = found
                times[article] = (float(looked_up), float(written))
                rows.append((article, kind, origin))
    late = {
        article
        for article, kind, origin in rows
        if kind != "unique"
        and (origin not in times or times[origin][1] + VISIBLE_AFTER > times[article][0])
    }
    late_origins = {origin for article, _, origin in rows if article in late}
    q = dict.fromkeys(
        ("near_duplicates", "near_joined_original", "exact_copies", "exact_copies_dropped",
         "unique", "unique_merged", "origin_dropped", "out_of_order"), 0,
    )  # fmt: skip
    for article, kind, origin in rows:
        found = cluster[article]
        if article in late or article in late_origins:
            q["out_of_order"] += 1
        elif kind == "copy":
            q["exact_copies"] += 1
            q["exact_copies_dropped"] += found == "-"
        elif found == "-":
            q["origin_dropped"] += 1  # a generated text equal to another: rare
        elif kind == "near":
            q["near_duplicates"] += 1
            q["near_joined_original"] += cluster.get(origin) == found
        else:
            q["unique"] += 1
            q["unique_merged"] += found != article
    return q


def run_workers(args: argparse.Namespace, url: str, workers: int, folder: Path) -> dict[str, Any]:
    """``workers`` processes dealt one stream of ``args.articles``, sharing one story table."""
    prefix = f"bench-story-table-{uuid.uuid4().hex[:8]}"
    asyncio.run(install(url, prefix))
    outs = [folder / f"w{workers}-{n}.txt" for n in range(workers)]
    procs = [
        subprocess.Popen(
            [
                sys.executable, __file__, "--worker", "--url", url, "--prefix", prefix,
                "--articles", str(args.articles), "--seed", str(args.seed), "--batch",
                str(args.batch), "--index", str(n), "--of", str(workers), "--out", str(out),
                "--lag", str(args.lag), "--near-share", str(args.near_share),
                "--copy-share", str(args.copy_share),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, out in enumerate(outs)
    ]  # fmt: skip
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed ({proc.returncode})")
        results.append(json.loads(out))
    q = quality(outs)
    for path in outs:
        path.unlink()
    for r in results:
        r["rss_growth_per_10k_mb"] = slope(r["samples"], WARM_UP)
        r["rss_end_mb"] = round(r["samples"][-1]["rss_mb"], 1)
    return {
        "workers": workers,
        "articles_per_s": round(
            sum(r["articles"] for r in results) / max(r["seconds"] for r in results)
        ),
        "near_joined_share": round(q["near_joined_original"] / max(1, q["near_duplicates"]), 5),
        "copies_dropped_share": round(q["exact_copies_dropped"] / max(1, q["exact_copies"]), 5),
        "quality": q,
        "per_worker": results,
    }


async def install(url: str, prefix: str) -> None:
    """The story table's index template (what ``newswire setup`` puts)."""
    backend = ElasticsearchBackend(Settings(), url)
    try:
        await SearchStoryStore(backend, prefix, window_seconds=7 * 86_400).install()
    finally:
        await backend.close()


def report(summary: dict[str, Any]) -> None:
    print(f"\n{summary['articles']:,} articles, batches of {summary['batch']}")
    for run in summary["runs"].values():
        q = run["quality"]
        print(f"\n{run['workers']} worker(s): {run['articles_per_s']} articles/s in all")
        print(f"  near duplicates given their original's cluster: {q['near_joined_original']:,} "
              f"of {q['near_duplicates']:,} ({run['near_joined_share']:.3%})")  # fmt: skip
        print(f"  exact copies dropped: {q['exact_copies_dropped']:,} of {q['exact_copies']:,}")
        print(f"  distinct articles merged into another's cluster: {q['unique_merged']:,} of "
              f"{q['unique']:,}")  # fmt: skip
        print(f"  set apart (original not yet searchable when looked up): {q['out_of_order']:,}")
        for n, r in enumerate(run["per_worker"]):
            growth = r["rss_growth_per_10k_mb"]
            grows = "n/a" if growth is None else f"{growth:+.2f} MiB per 10k articles"
            print(f"  worker {n}: {r['articles']:,} articles in {r['seconds']:.0f} s "
                  f"(story path {r['story_seconds']:.0f} s); RSS {r['rss_start_mb']:.0f} -> "
                  f"{r['rss_end_mb']:.0f} MiB, peak {r['peak_rss_mb']:.0f}; after "
                  f"{WARM_UP:,}: {grows}")  # fmt: skip
            print("    RSS every 10k: " + " ".join(f"{s['rss_mb']:.0f}" for s in r["samples"]))


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--near-share", type=float, default=0.10)
    parser.add_argument("--copy-share", type=float, default=0.05)
    parser.add_argument("--lag", type=int, default=2000, help="newest originals not derived from")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--url", help="use this Elasticsearch instead of starting one")
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--of", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.worker:
        print(json.dumps(asyncio.run(one_worker(args))))
        return 0
    signal.signal(signal.SIGTERM, _terminated)  # so a killed run still stops its node
    local = None
    started_here = False
    url = args.url
    if url is None:
        from workshop.stack import LocalStack

        base = args.port_base
        settings = Settings(
            home=HOME,
            search_port=base + 850,
            search_transport_port=base + 860,
            search_heap="768m",
            elasticsearch_url=f"http://127.0.0.1:{base + 850}",
        )
        local = LocalStack(settings, dist_dir=DIST, services=("search",))
        started_here = not local.status().healthy
        url = local.up().search.endpoint
    summary: dict[str, Any] = {"articles": args.articles, "batch": args.batch, "runs": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as folder:
            for n in args.workers:
                summary["runs"][n] = run_workers(args, url, n, Path(folder))
                if not args.json:
                    report({**summary, "runs": {n: summary["runs"][n]}})
    finally:
        if local is not None and started_here:
            local.down()
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

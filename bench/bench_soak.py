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

Each worker samples its RSS every 10,000 articles, times each batch's lookup, refreshed
write and check for concurrently founded twins (``SearchStoryStore.settle``), and writes
its verdicts (id, kind, original, cluster, when its batch was looked up and written) to a
file; quality is counted over all of them at the end (:func:`quality`): near duplicates
given their original's cluster and exact copies dropped, each apart by how the two batches
ran (original searchable first, the two racing, or the original handled after), and
distinct articles merged into another cluster (wrongly). What a worker holds is its
batch's view and the batch's own articles, so its RSS should stay flat and be the same
whatever the number of workers.

Elasticsearch: one local node (``workshop.stack.LocalStack``, search only) under
``.newswire/bench-soak`` on ports ``NEWSWIRE_BENCH_PORT_BASE`` + 850/860 (default
36850/36860), stopped at the end unless it was already running; ``--url`` uses another.

    .venv/bin/python bench/bench_soak.py [--articles 200000] [--workers 1 3] [--json]

``--lag 0`` lets a near duplicate or copy derive from the newest article, which another
worker may be handling at that moment: the race of two workers on one story, forced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
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
    phases: dict[str, list[float]] = {"lookup": [], "flush": [], "settle": []}
    adopted = 0
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
                    result = await story_batch([a for a, _, _ in batch], store, flush=False)
                    break
                except RetryableError as exc:  # as the worker does (it backs off)
                    store.discard()
                    retries += 1
                    print(f"retry: {exc}", file=sys.stderr, flush=True)
                    await asyncio.sleep(1.0)
            phases["lookup"].append(time.monotonic() - began)
            for phase, step in (("flush", store.flush), ("settle", store.settle)):
                began_step = time.monotonic()
                while True:
                    try:
                        answer = await step()
                        break
                    except RetryableError as exc:  # what failed stays pending
                        retries += 1
                        print(f"retry: {exc}", file=sys.stderr, flush=True)
                        await asyncio.sleep(1.0)
                phases[phase].append(time.monotonic() - began_step)
            moves = answer if isinstance(answer, dict) else {}
            adopted += len(moves)
            result = result.settled(moves)
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
        # per batch: lookup (msearch + search + clustering), flush (refreshed bulk), settle
        # (the check of the batch's new founders, and the rare rewrite)
        "batch_ms": {
            phase: {
                "mean": round(1000 * statistics.fmean(values), 1),
                "p50": round(1000 * statistics.median(values), 1),
                "p95": round(1000 * statistics.quantiles(values, n=20)[-1], 1),
            }
            for phase, values in phases.items()
            if len(values) >= 2
        },
        "twins_adopted": adopted,
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


def timing(origin: tuple[float, float] | None, own: tuple[float, float]) -> str:
    """How a derived article's story path ran against its original's, from the (looked
    up, written) times of their batches: "in_order" (the original's batch was written,
    refreshed and settled, before the article was looked up), "reversed" (the article's
    batch was written before the original was looked up: a worker ran ahead of another by
    more than the lag), "raced" (the two batches overlapped: the race the check after the
    write settles)."""
    if origin is None or own[1] <= origin[0]:
        return "reversed"
    return "in_order" if origin[1] <= own[0] else "raced"


WHEN = ("in_order", "raced", "reversed")


def quality(paths: list[Path]) -> dict[str, int]:
    """Counts over every worker's verdicts ("id kind origin cluster looked-up written"
    lines). Near duplicates and copies are scored by :func:`timing` against their original:
    in order (the headline: the original was searchable), raced (must share the original's
    cluster all the same: a copy may be kept, as an article of the original's cluster), and
    reversed (the original, handled after, must join the article's cluster, or be dropped as
    a copy of its copy). A distinct article is wrongly merged when its cluster is neither its
    own nor that of an article derived from it (directly or through a near duplicate)."""
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
    children: dict[str, list[str]] = {}
    for article, kind, origin in rows:
        if kind != "unique":
            children.setdefault(origin, []).append(article)

    def story_mates(article: str) -> set[str]:
        mates, todo = set(), list(children.get(article, []))
        while todo:
            mate = todo.pop()
            mates.add(cluster.get(mate, "-"))
            todo += children.get(mate, [])
        return mates

    q: dict[str, int] = {"unique": 0, "unique_merged": 0, "origin_dropped": 0}
    for when in ("in_order", "raced", "reversed"):
        for key in ("near_{}", "near_{}_joined", "copies_{}", "copies_{}_ok", "copies_{}_dropped"):
            q[key.format(when)] = 0
    for article, kind, origin in rows:
        found = cluster[article]
        if kind == "unique":
            if found == "-":
                q["origin_dropped"] = q.get("origin_dropped", 0) + 1  # a copy of its copy
            else:
                q["unique"] = q.get("unique", 0) + 1
                wrong = found != article and found not in story_mates(article)
                q["unique_merged"] = q.get("unique_merged", 0) + wrong
            continue
        when = timing(times.get(origin), times[article])
        base = cluster.get(origin, "-")
        if kind == "copy":
            if when == "in_order":
                ok = found == "-"
            else:  # dropped, or kept as an article of its original's cluster (or the reverse)
                ok = found == "-" or base == "-" or found == base
            q[f"copies_{when}"] = q.get(f"copies_{when}", 0) + 1
            q[f"copies_{when}_ok"] = q.get(f"copies_{when}_ok", 0) + ok
            q[f"copies_{when}_dropped"] = q.get(f"copies_{when}_dropped", 0) + (found == "-")
        else:
            joined = found != "-" and found == base
            q[f"near_{when}"] = q.get(f"near_{when}", 0) + 1
            q[f"near_{when}_joined"] = q.get(f"near_{when}_joined", 0) + joined
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
        "near_joined_share": round(q["near_in_order_joined"] / max(1, q["near_in_order"]), 5),
        "near_joined_share_all": round(
            sum(q[f"near_{w}_joined"] for w in WHEN) / max(1, sum(q[f"near_{w}"] for w in WHEN)),
            5,
        ),
        "copies_dropped_share": round(
            q["copies_in_order_dropped"] / max(1, q["copies_in_order"]), 5
        ),
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
        print(f"  near duplicates given their original's cluster, original searchable: "
              f"{q['near_in_order_joined']:,} of {q['near_in_order']:,} "
              f"({run['near_joined_share']:.3%})")  # fmt: skip
        print(f"    raced (the two batches overlapped): {q['near_raced_joined']:,} of "
              f"{q['near_raced']:,}; reversed (original handled after): "
              f"{q['near_reversed_joined']:,} of {q['near_reversed']:,}; all: "
              f"{run['near_joined_share_all']:.3%}")  # fmt: skip
        print(f"  exact copies dropped, original searchable: {q['copies_in_order_dropped']:,} of "
              f"{q['copies_in_order']:,}; raced, dropped or in the original's cluster: "
              f"{q['copies_raced_ok']:,} of {q['copies_raced']:,}; reversed: "
              f"{q['copies_reversed_ok']:,} of {q['copies_reversed']:,}")  # fmt: skip
        print(f"  distinct articles merged into another's cluster: {q['unique_merged']:,} of "
              f"{q['unique']:,} (originals dropped as a copy of their copy: "
              f"{q['origin_dropped']:,})")  # fmt: skip
        for n, r in enumerate(run["per_worker"]):
            growth = r["rss_growth_per_10k_mb"]
            grows = "n/a" if growth is None else f"{growth:+.2f} MiB per 10k articles"
            print(f"  worker {n}: {r['articles']:,} articles in {r['seconds']:.0f} s "
                  f"(story path {r['story_seconds']:.0f} s); RSS {r['rss_start_mb']:.0f} -> "
                  f"{r['rss_end_mb']:.0f} MiB, peak {r['peak_rss_mb']:.0f}; after "
                  f"{WARM_UP:,}: {grows}")  # fmt: skip
            print("    RSS every 10k: " + " ".join(f"{s['rss_mb']:.0f}" for s in r["samples"]))
            print("    per batch (mean/p50/p95 ms): " + "; ".join(
                f"{k} {v['mean']}/{v['p50']}/{v['p95']}" for k, v in r["batch_ms"].items()
            ) + f"; twins adopted {r['twins_adopted']}")  # fmt: skip


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

"""Worker throughput and CPU share with 1, 2 and 3 workers on a local cluster
(``make bench``; issue 18).

Starts a cluster of three KRaft brokers (RF 3, min ISR 2) and three Elasticsearch nodes
(one replica) in ``.newswire/bench-cluster`` on ports base+940..945 (brokers, controllers),
base+950..952 (HTTP) and base+960..962 (transport), ``NEWSWIRE_BENCH_PORT_BASE``; stops it
at the end (``--keep`` leaves it). For each worker count: topics and an index of their own,
that many ``newswire worker`` processes (spaCy recogniser, 6 partitions), a warm-up batch
indexed, then ``--articles`` published at once and timed until all are indexed (the index
counted every 0.5 s). Prints articles/s and the CPU seconds each process (worker, broker,
node, with its children) used in that window, read from /proc, as a share of all of them
and of the machine's capacity (elapsed x cores). Each run checks correctness: every article
indexed once (ids across the alias), none lost, none duplicated; a failed check fails the
bench.

Two shared cores cannot show a speed-up from more workers: the figures show that
correctness holds and how the CPU divides between workers, brokers and search nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout

from pipeline.kafka.client import make_producer, publish_raw  # noqa: E402
from pipeline.models import RawArticle, Source  # noqa: E402
from pipeline.provision import run_setup  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sinks.engines import open_backend  # noqa: E402
from workshop.stack import LocalStack  # noqa: E402
from workshop.stack.cluster import client_settings  # noqa: E402

HOME = REPO / ".newswire" / "bench-cluster"
DIST = REPO / ".newswire" / "dist"
NODES = 3
WARM_UP = 24
LIMIT_S = 900.0
_TEXT = (
    "council budget river bridge election minister hospital school storm harbour farmers "
    "market shares inflation court judge museum festival orchestra stadium league coach "
    "railway airport strike union factory wages energy solar wind coal drought flood vaccine "
    "clinic research university students police protest parliament treaty border trade"
)
WORDS = _TEXT.split()
PLACES = ("London", "Paris", "Berlin", "Madrid", "Nairobi", "Lagos", "Delhi", "Tokyo", "Lima")
PEOPLE = ("Angela Merkel", "Barack Obama", "Emmanuel Macron", "Jacinda Ardern", "Lula da Silva")


def articles(tag: str, count: int, seed: int) -> list[RawArticle]:
    """``count`` distinct articles (no exact duplicates) of about 60 words."""
    rng = random.Random(seed)
    return [
        RawArticle(
            id=f"{tag}-{n:06d}",
            url=f"https://bench.example.org/{tag}/{n}",
            title=f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} in {rng.choice(PLACES)}",
            body=(
                f"{rng.choice(PEOPLE)} spoke in {rng.choice(PLACES)} on day {n} of the {tag} "
                f"run. Reporters noted {' '.join(rng.choice(WORDS) for _ in range(45))}. "
                f"The item number is {seed}-{n}."
            ),
            source=Source(name="Bench wire", domain="bench.example.org"),
        )
        for n in range(count)
    ]


def cluster_settings(base: int) -> Settings:
    return client_settings(
        Settings(
            home=HOME,
            kafka_port=base + 940,
            kafka_controller_port=base + 941,
            search_port=base + 950,
            search_transport_port=base + 960,
            kafka_heap="512m",
            search_heap="512m",
            ner_backend="spacy",
            worker_web_port=0,
        ),
        NODES,
    )


def isolated(settings: Settings, name: str) -> Settings:
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    return settings.model_copy(
        update={
            "index_alias": f"nwbench-{tag}-articles",
            "topic_raw": f"nwbench.{tag}.raw",
            "topic_enriched": f"nwbench.{tag}.enriched",
            "topic_dlq": f"nwbench.{tag}.dlq",
            "topic_stories": f"nwbench.{tag}.stories",
            "topic_copies": f"nwbench.{tag}.copies",
            "story_index": f"nwbench-{tag}-stories",
            "worker_id": f"nwbench-{tag}",
            "topic_partitions": 6,
        }
    )


WORKER_ENV = (
    "kafka_bootstrap", "elasticsearch_url", "index_alias", "topic_raw", "topic_enriched",
    "topic_dlq", "topic_stories", "topic_copies", "story_index", "worker_id",
    "topic_partitions", "topic_replication", "topic_min_insync_replicas", "index_replicas",
    "ner_backend", "home",
)  # fmt: skip


def start_worker(settings: Settings, log_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")}
    env.update({f"NEWSWIRE_{n.upper()}": str(getattr(settings, n)) for n in WORKER_ENV})
    env["NEWSWIRE_WORKER_WEB_PORT"] = "0"
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(p, 0.0) for p in tree)


async def publish(settings: Settings, batch: list[RawArticle]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for start in range(0, len(batch), 200):
            await publish_raw(producer, settings.topic_raw, batch[start : start + 200])
    finally:
        await producer.stop()


async def count(settings: Settings) -> int:
    backend = open_backend(settings)
    try:
        await backend.refresh(settings.index_alias)
        return await backend.count(settings.index_alias)
    except Exception:  # the alias is not there yet, a node is busy: count again
        return -1
    finally:
        await backend.close()


async def ids(settings: Settings) -> list[str]:
    """Every ``_id`` behind the alias (one search: a run indexes fewer than 10,000)."""
    backend = open_backend(settings)
    try:
        await backend.refresh(settings.index_alias)
        body = {"size": 10000, "_source": False, "query": {"match_all": {}}}
        hits = (await backend.search(settings.index_alias, body))["hits"]["hits"]
        return [str(hit["_id"]) for hit in hits]
    finally:
        await backend.close()


async def wait_count(settings: Settings, want: int, workers: list[Any]) -> None:
    deadline = time.monotonic() + LIMIT_S
    while await count(settings) < want:
        for worker in workers:
            if worker.poll() is not None:
                raise SystemExit(f"a worker exited ({worker.returncode}); see its log")
        if time.monotonic() > deadline:
            raise SystemExit(f"not {want} articles indexed after {LIMIT_S:.0f} s")
        await asyncio.sleep(0.5)


async def run_one(
    stack: LocalStack, base: Settings, workers: int, n: int, runs_dir: Path
) -> dict[str, Any]:
    """One measurement with ``workers`` workers: articles/s, CPU per process, correctness."""
    settings = isolated(base, f"w{workers}")
    await run_setup(settings)
    procs = [start_worker(settings, runs_dir / f"w{workers}-worker{k}.log") for k in range(workers)]
    try:
        warm = articles(f"warm{workers}", WARM_UP, seed=workers)
        await publish(settings, warm)
        await wait_count(settings, WARM_UP, procs)
        await asyncio.sleep(5)  # every worker has its partitions (a late joiner rebalances)
        pids = {f"worker-{k + 1}": p.pid for k, p in enumerate(procs)}
        pids |= {s.name: s.pid for s in stack.status().services if s.pid is not None}
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        batch = articles(f"run{workers}", n, seed=100 + workers)
        started = time.monotonic()
        await publish(settings, batch)
        await wait_count(settings, WARM_UP + n, procs)
        elapsed = time.monotonic() - started
        cpu = {name: tree_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        await asyncio.sleep(3)  # a late duplicate would show up here
        found = await ids(settings)
        sent = {a.id for a in warm + batch}
        lost = len(sent - set(found))
        duplicates = len(found) - len(set(found))
        alive = all(p.poll() is None for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    total = sum(cpu.values())
    capacity = elapsed * (os.cpu_count() or 1)
    return {
        "workers": workers,
        "articles": n,
        "seconds": round(elapsed, 1),
        "articles_per_s": round(n / elapsed, 1),
        "lost": lost,
        "duplicates": duplicates,
        "extra": len(set(found) - sent),
        "workers_alive": alive,
        "cpu_s": {name: round(s, 1) for name, s in cpu.items()},
        "cpu_share_of_used": {name: round(s / total, 3) for name, s in cpu.items()},
        "used_of_machine": round(total / capacity, 3),
    }


def report(results: list[dict[str, Any]]) -> str:
    lines = ["workers  articles/s  seconds  lost  dup  CPU share (of what these processes used)"]
    for r in results:
        groups: dict[str, float] = {}
        for name, share in r["cpu_share_of_used"].items():
            kind = name.rsplit("-", 1)[0]
            groups[kind] = groups.get(kind, 0.0) + share
        split = ", ".join(f"{k} {v:.0%}" for k, v in groups.items())
        per_worker = ", ".join(
            f"{s:.1f}" for name, s in r["cpu_s"].items() if name.startswith("worker")
        )
        lines.append(
            f"{r['workers']:>7}  {r['articles_per_s']:>10}  {r['seconds']:>7}  {r['lost']:>4}  "
            f"{r['duplicates']:>3}  {split}; worker CPU s: {per_worker}; "
            f"{r['used_of_machine']:.0%} of the machine"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    base_port = int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "21000"))
    settings = cluster_settings(base_port)
    stack = LocalStack(settings, print, dist_dir=DIST, nodes=NODES, services=("kafka", "search"))
    started_here = not stack.status().healthy
    runs_dir = HOME / "runs" / time.strftime("%Y%m%dT%H%M%S")
    runs_dir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        up_started = time.monotonic()
        stack.up(timeout=600)
        up_s = round(time.monotonic() - up_started, 1)
        for workers in args.workers:
            results.append(await run_one(stack, settings, workers, args.articles, runs_dir))
            print(report(results[-1:]), flush=True)
    finally:
        if started_here and not args.keep:
            stack.down()
    summary = {"cluster_up_s": up_s, "nodes": NODES, "runs": results}
    print(json.dumps(summary, indent=2) if args.json else report(results))
    print(f"cluster up in {up_s} s; worker logs in {runs_dir}")
    bad = [r for r in results if r["lost"] or r["duplicates"] or not r["workers_alive"]]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--articles", type=int, default=600, help="articles per run (at most 9,000)"
    )
    parser.add_argument(
        "--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3]
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args(argv)
    if not 0 < args.articles <= 9000:
        parser.error("--articles must be between 1 and 9,000 (ids are read in one search)")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

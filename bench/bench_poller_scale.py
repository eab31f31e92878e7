"""Poller at scale: one ``newswire poll`` process, a big feed list, the local Kafka.

A loopback feed farm (``bench/feed_farm.py``, its own process) serves ``--feeds`` feeds
(default 200,000) over ``--hosts`` host addresses 127.0.x.y (default 200) with ETags and a
new item per feed every ``--churn`` seconds. The feed list is written to the feeds topic
(the list of record), then one poller runs for ``--intervals`` polling intervals (every
feed has the fixed ``--interval``), is stopped, and is started again. Reported:

- feed list: seconds to write it to the topic, seconds until the poller had loaded it and
  was assigned its partitions (``poller.partitions_assigned``);
- peak RSS of the poller's process tree (poller + parse pool), sampled every 2 s;
- coverage: feeds requested at least once in each interval (from the farm);
- schedule lag (request start minus due time): p99 from the poller's Prometheus
  histogram ``newswire_poller_schedule_lag_seconds``, and the share at or under 10 s;
- peak requests in flight per host address (seen by the farm) against ``poll_per_host``;
  failed polls by reason (``newswire_feed_failures_total``);
- state topic bytes: all records written, and the newest record per feed (what
  compaction keeps), per feed;
- restart: seconds from the second start to its first request at the farm;
- the months model (in process): ``--months-feeds`` feeds through ``--months-polls`` polls
  each with churn, the state memory per feed and record size at the end.

    .venv/bin/python bench/bench_poller_scale.py [--feeds 200000] [--interval 1800] \\
        [--warm] [--bootstrap HOST:PORT] [--json]

``--warm`` measures the steady state instead of the cold import: every feed's state is
written first as a poller that had polled it once would have left it (:func:`warm_states`).

Without ``--bootstrap`` a Kafka-only local stack is started (NEWSWIRE_BENCH_PORT_BASE).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.models import RawArticle  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sources.feeds import FeedConfig  # noqa: E402
from pipeline.sources.feedtopic import FeedTopic  # noqa: E402
from pipeline.sources.scheduler import spread  # noqa: E402
from pipeline.sources.seen import select  # noqa: E402
from pipeline.sources.state import FeedState  # noqa: E402

BENCH_HOME = REPO / ".newswire" / "bench-poller-scale"
DIST = REPO / ".newswire" / "dist"
sys.path.insert(0, str(REPO / "bench"))
from feed_farm import Farm, feed_url  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` and its descendants (MiB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        rss[int(entry.name)] = int(match.group(1)) if match else 0
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, reaped children included) of ``pid`` and its
    descendants, from /proc: the poller and its parse pool."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        cpu[int(entry.name)] = sum(int(v) for v in fields[11:15]) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def lag_quantiles(metrics_text: str) -> dict[str, Any]:
    """p50/p99 bounds and the share <= 10 s from the lag histogram's buckets."""
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if line.startswith("newswire_poller_schedule_lag_seconds_bucket"):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                buckets.append((float(le.group(1)), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, Any] = {"polls": int(total)}
    for name, q in (("p50_le", 0.5), ("p99_le", 0.99)):
        out[name] = next((le for le, c in buckets if total and c >= q * total), None)
    at10 = next((c for le, c in buckets if le == 10.0), 0.0)
    out["share_le_10s"] = round(at10 / total, 4) if total else None
    return out


def failures(metrics_text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("newswire_feed_failures_total{"):
            reason = re.search(r'reason="([^"]+)"', line)
            if reason:
                out[reason.group(1)] = float(line.rsplit(" ", 1)[1])
    return out


def farm_stats(port: int, **query: float) -> dict[str, Any]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats?{qs}", timeout=60) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


async def state_bytes(settings: Settings, feeds: int) -> dict[str, Any]:
    """Bytes of the state topic's records: all written, and the newest per feed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from pipeline.kafka.compacted import read_to_end
    from pipeline.kafka.topics import topic_partitions

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_of(settings), enable_auto_commit=False,
        isolation_level="read_committed", max_partition_fetch_bytes=8 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    latest: dict[bytes, int] = {}
    seen = {"records": 0, "bytes": 0}

    def apply(record: Any) -> None:
        size = len(record.value or b"") + len(record.key or b"")
        seen["records"] += 1
        seen["bytes"] += size
        latest[record.key] = size

    try:
        topic = settings.topic_poller_state
        parts = sorted(await topic_partitions(consumer, topic))
        await read_to_end(consumer, [TopicPartition(topic, p) for p in parts], apply)
    finally:
        await consumer.stop()
    return {
        "records": seen["records"],
        "bytes_written_per_feed": round(seen["bytes"] / max(1, feeds)),
        "compacted_bytes_per_feed": round(sum(latest.values()) / max(1, len(latest))),
        "max_record_bytes": max(latest.values(), default=0),
    }


async def create_topics(settings: Settings) -> None:
    """The poller topics and the raw topic (what ``newswire setup`` creates)."""
    from pipeline.kafka.topics import TopicSpec, create_missing_topics
    from pipeline.sources.coordination import ensure_poller_topics

    servers = bootstrap_of(settings)
    await ensure_poller_topics(servers, settings)
    await create_missing_topics(settings, [TopicSpec(settings.topic_raw, 4)], servers)


def bootstrap_of(settings: Settings) -> str:
    return str(settings.kafka_bootstrap)


def months_model(feeds: int, polls: int, seed: int = 16) -> dict[str, Any]:
    """``feeds`` feed states through ``polls`` polls each: every poll that is not a 304
    sees the feed's 20 newest items (a new item with probability 0.3, an edit of the
    newest with 0.02). At the end: the memory of the states as a restarted poller holds
    them (decoded from their records under tracemalloc) and the record sizes, per feed."""
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    cap = Settings(poller_metrics_port=0).poll_seen_items
    states = [
        FeedState(key=f"{i:032x}", url=f"https://news{i}.example.org/rss.xml") for i in range(feeds)
    ]

    def article(i: int, n: int, edit: int = 0) -> RawArticle:
        title = f"Story {n} of feed {i}" + (f" (edit {edit})" if edit else "")
        return RawArticle(id=f"{i}-{n}", title=title, published_at=base + timedelta(minutes=n))

    shown = [[article(i, n) for n in range(19, -1, -1)] for i in range(feeds)]
    heads = [20] * feeds
    published = revisions = 0
    started = time.perf_counter()
    for _poll in range(polls):
        for i, state in enumerate(states):
            changed = rng.random() < 0.3
            edited = rng.random() < 0.02
            if not (changed or edited):
                continue  # a 304: nothing to select
            if changed:
                shown[i] = [article(i, heads[i]), *shown[i][:19]]
                heads[i] += 1
            if edited:
                newest = shown[i][0]
                shown[i][0] = newest.model_copy(update={"title": f"{newest.title} (edited)"})
            chosen = select(shown[i], state.seen, state.floor, cap)
            state.seen, state.floor = chosen.seen, chosen.floor
            state.total_items += chosen.new
            state.revisions += chosen.revisions
            state.etag = f'"{i}-{heads[i]}-{rng.random():.6f}"'
            state.last_modified = "Wed, 02 Dec 2026 10:00:00 GMT"
            state.body_hash = f"{heads[i]:016x}"
            published += len(chosen.publish)
            revisions += chosen.revisions
    seconds = time.perf_counter() - started
    records = [s.to_json() for s in states]
    del shown, states
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loaded = [FeedState.from_json(r) for r in records]
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    sizes = [len(r) for r in records]
    return {
        "feeds": len(loaded),
        "polls_per_feed": polls,
        "published": published,
        "revisions": revisions,
        "memory_bytes_per_feed": round(memory / feeds),
        "record_bytes_mean": round(sum(sizes) / len(sizes)),
        "record_bytes_max": max(sizes),
        "seconds": round(seconds, 1),
    }


def warm_states(
    feeds: list[FeedConfig],
    hosts: int,
    churn: float,
    farm_t0: float,
    settings: Settings,
    interval: float,
) -> tuple[list[FeedState], dict[str, Any]]:
    """The state a poller that already polled every feed once would hold: per feed, the
    farm's current document (its own ``Farm.body``) and ETag, items as the parser makes
    them (ids by ``article_id`` of the link, content hashed by ``select``), the body
    hash of ``outcome.body_hash`` (the caller sets the due times once it is built).

    Feedparser on 200,000 documents would cost ~30 CPU minutes, so the items are built
    without it; one feed per host is parsed for real (``parse_feed`` on the document the
    farm serves over HTTP) and its selection must equal the built one, or this raises."""
    from pipeline.identity import article_id
    from pipeline.sources.outcome import body_hash
    from pipeline.sources.parse import parse_feed

    farm = Farm(0, hosts, churn)
    farm.t0 = farm_t0
    cap = settings.poll_seen_items

    def items(i: int, k: int) -> list[RawArticle]:
        # The fields ``select`` reads, as ``parse_feed`` makes them from the farm's items
        # (a pydantic model per item would cost more than the rest of the build).
        return cast(
            list[RawArticle],
            [
                SimpleNamespace(
                    id=article_id(f"http://site{i % 997}.example/{i}/{n}"),
                    title=f"Feed {i} story {n}",
                    summary=f"Story {n} of feed {i}, a few words of summary text.",
                    body=None,
                    published_at=None,
                )
                for n in range(k, k - 20, -1)
            ],
        )

    now = time.time()
    states: list[FeedState] = []
    checked = 0
    for i, feed in enumerate(feeds):
        k = farm.current(i, now)
        body = farm.body(i, k)
        chosen = select(items(i, k), b"", None, cap)
        state = FeedState(
            key=feed.key, url=feed.url, etag=f'"{i}-{k}"', body_hash=body_hash(body),
            interval=interval, last_status=200, last_outcome="new",
            new_items=chosen.new, total_items=chosen.new, seen=chosen.seen, floor=chosen.floor,
        )  # fmt: skip
        states.append(state)
        if i < hosts:  # one feed per host: the real fetch and parse must agree
            with urllib.request.urlopen(feed.url, timeout=30) as response:  # noqa: S310 (loopback farm)
                served, etag = response.read(), response.headers.get("ETag")
            parsed = parse_feed(served, feed_url=feed.url)
            real = select(parsed.articles, b"", None, cap)
            if etag != state.etag or body_hash(served) != state.body_hash:
                raise RuntimeError(f"warm: feed {i} changed under the build ({etag})")
            if (real.seen, real.floor, real.new) != (chosen.seen, chosen.floor, chosen.new):
                raise RuntimeError(f"warm: built items of feed {i} differ from the parser's")
            checked += 1
    return states, {"warm_build_s": round(time.time() - now, 1), "warm_checked_by_parse": checked}


async def write_states(states: list[FeedState], settings: Settings) -> float:
    """Write ``states`` with the poller's own store (``KafkaStateStore.save``), many
    sends in flight at once; seconds taken."""
    from pipeline.sources.coordination import KafkaStateStore

    store = KafkaStateStore(bootstrap_of(settings), settings)
    started = time.perf_counter()
    try:
        for start in range(0, len(states), 2000):
            await asyncio.gather(*(store.save(s) for s in states[start : start + 2000]))
    finally:
        await store.close()
    return time.perf_counter() - started


def start_poller(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "newswire"), "poll"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


def first_log(log: Path, event: str, since_line: int = 0) -> dict[str, Any] | None:
    for n, line in enumerate(log.read_text(errors="replace").splitlines()):
        if n >= since_line and f'"{event}"' in line:
            try:
                data: dict[str, Any] = json.loads(line)
                return data
            except ValueError:
                continue
    return None


def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    port_base = int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    farm_port, control_port, metrics_port = port_base + 870, port_base + 871, port_base + 872
    farm = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "feed_farm.py"), "--feeds", str(args.feeds),
         "--hosts", str(args.hosts), "--port", str(farm_port), "--control", str(control_port),
         "--churn", str(args.churn)],
        stdout=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert farm.stdout is not None
    farm_t0 = float(json.loads(farm.stdout.readline())["t0"])
    run_id = uuid.uuid4().hex[:8]
    topics = settings.model_copy(
        update={
            "topic_feeds": f"bench.scale.{run_id}.feeds",
            "topic_poller_state": f"bench.scale.{run_id}.state",
            "topic_raw": f"bench.scale.{run_id}.raw",
            "poller_group": f"bench-scale-{run_id}",
        }
    )
    per_host = max(1, args.feeds // args.hosts)
    gap = round(min(2.0, 0.5 * args.interval / per_host), 3)
    result: dict[str, Any] = {
        "feeds": args.feeds, "hosts": args.hosts, "interval_s": args.interval,
        "churn_s": args.churn, "poll_per_host": args.per_host, "poll_host_gap_s": gap,
        "poll_concurrency": args.concurrency,
    }  # fmt: skip
    procs: list[subprocess.Popen[Any]] = [farm]
    try:

        async def write_list() -> float:
            await create_topics(topics)
            feeds = [FeedConfig(url=feed_url(i, args.hosts, farm_port)) for i in range(args.feeds)]
            started = time.perf_counter()
            await FeedTopic(bootstrap_of(topics), topics).write(feeds)
            return time.perf_counter() - started

        result["list_write_s"] = round(asyncio.run(write_list()), 1)

        async def load_list() -> tuple[float, float, int]:
            started, cpu = time.perf_counter(), time.process_time()
            listed = await FeedTopic(bootstrap_of(topics), topics).load()
            return time.perf_counter() - started, time.process_time() - cpu, len(listed.feeds)

        seconds, cpu_seconds, loaded = asyncio.run(load_list())
        result["list_load_s"] = round(seconds, 1)
        result["list_load_cpu_s"] = round(cpu_seconds, 1)
        result["list_loaded"] = loaded
        if args.list_only:
            return result
        due_from = 0.0
        if args.warm:
            # The steady state: the state topic as a poller that polled every feed once
            # left it; the measured intervals start when the first warm feed is due.
            listed = [FeedConfig(url=feed_url(i, args.hosts, farm_port)) for i in range(args.feeds)]
            states, built = warm_states(
                listed, args.hosts, args.churn, farm_t0, topics, args.interval
            )
            result.update(built)
            # Due from when the write and the poller's start are done (``--warm-lead``),
            # spread by key over one interval; the last poll an interval before.
            due_from = time.time() + args.warm_lead
            for state in states:
                state.next_poll_at = due_from + spread(state.key) * args.interval
                state.last_poll_at = state.last_change_at = state.next_poll_at - args.interval
            result["warm_write_s"] = round(asyncio.run(write_states(states, topics)), 1)
            result["warm_lead_left_s"] = round(due_from - time.time(), 1)
            del states, listed
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")},
            "NEWSWIRE_KAFKA_BOOTSTRAP": bootstrap_of(topics),
            "NEWSWIRE_TOPIC_FEEDS": topics.topic_feeds,
            "NEWSWIRE_TOPIC_POLLER_STATE": topics.topic_poller_state,
            "NEWSWIRE_TOPIC_RAW": topics.topic_raw,
            "NEWSWIRE_POLLER_GROUP": topics.poller_group,
            "NEWSWIRE_ALLOW_PRIVATE_FEEDS": "true",
            "NEWSWIRE_POLL_INTERVAL": str(args.interval),
            "NEWSWIRE_POLL_MIN_INTERVAL": str(args.interval),
            "NEWSWIRE_POLL_MAX_INTERVAL": str(args.interval),
            "NEWSWIRE_POLL_FIRST_SPREAD": str(args.interval),
            "NEWSWIRE_POLL_CONCURRENCY": str(args.concurrency),
            "NEWSWIRE_POLL_PER_HOST": str(args.per_host),
            "NEWSWIRE_POLL_HOST_GAP": str(gap),
            "NEWSWIRE_POLLER_METRICS_PORT": str(metrics_port),
            "NEWSWIRE_LOG_FORMAT": "json",
            "NEWSWIRE_LOG_LEVEL": "INFO",
            "NEWSWIRE_HOME": str(BENCH_HOME),
        }
        BENCH_HOME.mkdir(parents=True, exist_ok=True)
        log = BENCH_HOME / f"poller-{run_id}.log"
        started = time.time()
        poller = start_poller(env, log)
        procs.append(poller)
        peak = 0.0
        assigned_at = None
        while assigned_at is None and time.time() < started + 300:
            time.sleep(1)
            peak = max(peak, tree_rss_mb(poller.pid))
            if first_log(log, "poller.partitions_assigned"):
                assigned_at = time.time()
            if poller.poll() is not None:
                raise RuntimeError(f"the poller exited ({poller.returncode}); see {log}")
        # The intervals count from when the poller had its feeds (coverage windows).
        t0 = max(assigned_at or time.time(), due_from)
        while time.time() < t0:  # warm: nothing is due before due_from
            time.sleep(1)
            peak = max(peak, tree_rss_mb(poller.pid))
        end = t0 + args.intervals * args.interval
        profiler = None
        if args.profile:
            profiler = subprocess.Popen(
                [str(REPO / ".venv" / "bin" / "py-spy"), "record", "--pid", str(poller.pid),
                 "--subprocesses", "--format", "raw", "--rate", "50", "--nonblocking",
                 "--duration", str(int(args.intervals * args.interval)), "-o", args.profile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        # Per interval: the poller tree's CPU seconds per request the farm saw, the
        # machine's load average and the share of its CPU that other work left idle.
        status_t0 = farm_stats(control_port, windows=0)["status"]
        marks = [(tree_cpu_s(poller.pid), farm_stats(control_port, windows=0)["requests"],
                  machine_cpu())]  # fmt: skip
        loads: list[list[float]] = [[] for _ in range(args.intervals)]
        while time.time() < end:
            time.sleep(2)
            peak = max(peak, tree_rss_mb(poller.pid))
            window = min(args.intervals - 1, int((time.time() - t0) // args.interval))
            loads[window].append(os.getloadavg()[0])
            if len(marks) <= window:
                marks.append(
                    (
                        tree_cpu_s(poller.pid),
                        farm_stats(control_port, windows=0)["requests"],
                        machine_cpu(),
                    )
                )
            if poller.poll() is not None:
                raise RuntimeError(f"the poller exited ({poller.returncode}); see {log}")
        marks.append(
            (tree_cpu_s(poller.pid), farm_stats(control_port, windows=0)["requests"], machine_cpu())
        )
        if profiler is not None:
            profiler.wait(120)
        per_interval = []
        for w, ((cpu_a, req_a, (busy_a, all_a)), (cpu_b, req_b, (busy_b, all_b))) in enumerate(
            itertools.pairwise(marks)
        ):
            polls = req_b - req_a
            per_interval.append({
                "requests": polls,
                "requests_per_s": round(polls / args.interval, 1),
                "poller_cpu_s": round(cpu_b - cpu_a, 1),
                "poller_cpu_ms_per_poll": round(1000 * (cpu_b - cpu_a) / max(1, polls), 2),
                "machine_busy_share": round((busy_b - busy_a) / max(1.0, all_b - all_a), 3),
                "load_avg_1m_min_max": [round(min(loads[w], default=0), 1),
                                        round(max(loads[w], default=0), 1)],
            })  # fmt: skip
        result["per_interval"] = per_interval
        result["cpus"] = os.cpu_count()
        result["start_to_assigned_s"] = (
            round(assigned_at - started, 1) if assigned_at is not None else None
        )
        result["peak_rss_mib"] = round(peak)
        stats = farm_stats(control_port, t0=t0, interval=args.interval, windows=args.intervals)
        result["covered_per_interval"] = stats["covered"]
        result["farm_status"] = stats["status"]
        result["farm_status_measured"] = {
            code: n - status_t0.get(code, 0) for code, n in stats["status"].items()
        }
        result["peak_in_flight_per_host"] = stats["peak_in_flight_per_host"]
        text = scrape(metrics_port)
        result["schedule_lag"] = lag_quantiles(text)
        result["failures_by_reason"] = failures(text)
        take = first_log(log, "poller.partitions_assigned")
        result["take_partitions_s"] = take.get("seconds") if take else None
        lines = len(log.read_text(errors="replace").splitlines())
        poller.send_signal(signal.SIGTERM)
        poller.wait(120)
        result["state_topic"] = asyncio.run(state_bytes(topics, args.feeds))
        restart = time.time()
        poller = start_poller(env, log)
        procs.append(poller)
        first = None
        while time.time() < restart + 180 and first is None:
            time.sleep(1)
            first = farm_stats(control_port, since=restart, windows=0)["first_since"]
        result["restart_to_first_request_s"] = round(first - restart, 1) if first else None
        again = None
        while time.time() < restart + 180 and again is None:
            again = first_log(log, "poller.partitions_assigned", since_line=lines)
            time.sleep(1)
        result["restart_take_partitions_s"] = again.get("seconds") if again else None
        poller.send_signal(signal.SIGTERM)
        poller.wait(120)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return result


def rebalance(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """A group of one poller with ``--feeds`` feeds from the topic (first polls spread over
    a day, so few are due), then a second poller joins: seconds to the first assignment,
    RSS with the whole list, and seconds until both pollers have their share."""
    port_base = int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    run_id = uuid.uuid4().hex[:8]
    topics = settings.model_copy(
        update={
            "topic_feeds": f"bench.rebalance.{run_id}.feeds",
            "topic_poller_state": f"bench.rebalance.{run_id}.state",
            "topic_raw": f"bench.rebalance.{run_id}.raw",
            "poller_group": f"bench-rebalance-{run_id}",
        }
    )

    async def write_list() -> None:
        await create_topics(topics)
        feeds = [
            FeedConfig(url=feed_url(i, args.hosts, port_base + 879)) for i in range(args.feeds)
        ]
        await FeedTopic(bootstrap_of(topics), topics).write(feeds)

    asyncio.run(write_list())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")},
        "NEWSWIRE_KAFKA_BOOTSTRAP": bootstrap_of(topics),
        "NEWSWIRE_TOPIC_FEEDS": topics.topic_feeds,
        "NEWSWIRE_TOPIC_POLLER_STATE": topics.topic_poller_state,
        "NEWSWIRE_TOPIC_RAW": topics.topic_raw,
        "NEWSWIRE_POLLER_GROUP": topics.poller_group,
        "NEWSWIRE_ALLOW_PRIVATE_FEEDS": "true",
        "NEWSWIRE_POLL_FIRST_SPREAD": "86400",
        "NEWSWIRE_POLL_INTERVAL": "86400",
        "NEWSWIRE_POLLER_METRICS_PORT": "0",
        "NEWSWIRE_LOG_FORMAT": "json",
        "NEWSWIRE_LOG_LEVEL": "INFO",
        "NEWSWIRE_HOME": str(BENCH_HOME),
    }
    BENCH_HOME.mkdir(parents=True, exist_ok=True)
    log_a, log_b = (BENCH_HOME / f"rebalance-{run_id}-{n}.log" for n in "ab")
    result: dict[str, Any] = {"feeds": args.feeds}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        started = time.time()
        a = start_poller(env, log_a)
        procs.append(a)
        peak = 0.0
        while first_log(log_a, "poller.partitions_assigned") is None:
            if time.time() > started + 300 or a.poll() is not None:
                raise RuntimeError(f"poller a never got its partitions; see {log_a}")
            peak = max(peak, tree_rss_mb(a.pid))
            time.sleep(0.5)
        result["start_to_assigned_s"] = round(time.time() - started, 1)
        time.sleep(5)
        result["rss_mib_one_poller_all_feeds"] = round(max(peak, tree_rss_mb(a.pid)))
        lines_a = len(log_a.read_text(errors="replace").splitlines())
        joined = time.time()
        b = start_poller(env, log_b)
        procs.append(b)
        done_a = done_b = None
        while done_a is None or done_b is None:
            if time.time() > joined + 300:
                raise RuntimeError(f"no rebalance within 300 s; see {log_a} and {log_b}")
            done_a = done_a or first_log(log_a, "poller.partitions_assigned", lines_a)
            done_b = done_b or first_log(log_b, "poller.partitions_assigned")
            time.sleep(0.5)
        result["second_start_to_both_assigned_s"] = round(time.time() - joined, 1)
        result["take_seconds_a_b"] = [done_a.get("seconds"), done_b.get("seconds")]
        result["feeds_a_b"] = [done_a.get("feeds"), done_b.get("feeds")]
        missed = [
            line for log in (log_a, log_b) for line in log.read_text(errors="replace").splitlines()
            if "not recognized" in line
            or ("Heartbeat failed" in line and "is rebalancing" not in line)
        ]  # fmt: skip
        result["heartbeat_problems"] = len(missed)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return result


def cpu_per_poll(args: argparse.Namespace) -> dict[str, Any]:
    """CPU seconds per poll of the poller itself (in this process, its parse pool
    included; no Kafka: the memory store, a no-op publish): one round of first polls
    (every feed answers 200 with 20 new items: parse, select, publish, save) and two of
    conditional polls (every feed answers 304). The same script runs against an older
    checkout (``PYTHONPATH``) for a before/after ratio."""
    from pipeline.logs import configure
    from pipeline.sources.poller import Poller
    from pipeline.sources.state import MemoryStateStore

    configure("WARNING", "json")  # to stderr; stdout is the result

    port_base = int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
    farm_port, control_port = port_base + 873, port_base + 874
    hosts = 20
    farm = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "feed_farm.py"), "--feeds", str(args.cpu_feeds),
         "--hosts", str(hosts), "--port", str(farm_port), "--control", str(control_port),
         "--churn", "1000000"],
        stdout=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert farm.stdout is not None
    json.loads(farm.stdout.readline())
    settings = Settings(
        allow_private_feeds=True, poll_per_host=4, poll_host_gap=0, poller_metrics_port=0,
        poll_concurrency=args.concurrency,
    )  # fmt: skip
    feeds = [FeedConfig(url=feed_url(i, hosts, farm_port)) for i in range(args.cpu_feeds)]

    async def publish(_articles: list[RawArticle]) -> None:
        return None

    def own_cpu() -> float:
        return tree_cpu_s(os.getpid()) - tree_cpu_s(farm.pid)

    async def rounds() -> dict[str, Any]:
        poller = Poller(settings, feeds, publish, MemoryStateStore())
        out: dict[str, Any] = {"feeds": args.cpu_feeds, "pipeline": str(
            Path(sys.modules["pipeline"].__file__ or "").parent)}  # fmt: skip
        try:
            for name in ("first_polls_200", "unchanged_304", "unchanged_304_again"):
                cpu, wall = own_cpu(), time.perf_counter()
                summary = await poller.run_once(respect_backoff=False)
                cpu, wall = own_cpu() - cpu, time.perf_counter() - wall
                out[name] = {
                    "cpu_ms_per_poll": round(1000 * cpu / args.cpu_feeds, 3),
                    "polls_per_s": round(args.cpu_feeds / wall, 1),
                    "summary": str(summary)[:200],
                }
        finally:
            await poller.close()
        out["load_avg_1m"] = round(os.getloadavg()[0], 1)
        return out

    try:
        return asyncio.run(rounds())
    finally:
        farm.kill()
        farm.wait()


def report(result: dict[str, Any]) -> None:
    for key, value in result.items():
        print(f"{key:32} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200_000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1800.0)
    parser.add_argument("--intervals", type=int, default=2)
    parser.add_argument("--churn", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--months-feeds", type=int, default=2000)
    parser.add_argument("--months-polls", type=int, default=1000)
    parser.add_argument("--months-only", action="store_true", help="only the months model")
    parser.add_argument(
        "--list-only", action="store_true", help="only write and load the feed list"
    )
    parser.add_argument(
        "--rebalance-only", action="store_true", help="only the group start and rebalance"
    )
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    parser.add_argument(
        "--profile", help="record the poller tree with py-spy (raw folded stacks) to this file"
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="only the in-process CPU per poll rounds"
    )
    parser.add_argument("--cpu-feeds", type=int, default=2000)
    parser.add_argument(
        "--warm", action="store_true",
        help="the steady state: write every feed's state as a poller that polled it once "
        "would have, before the measured poller starts",
    )  # fmt: skip
    parser.add_argument(
        "--warm-lead", type=float, default=150.0,
        help="seconds from the warm build to the first due poll (covers write and start)",
    )  # fmt: skip
    parser.add_argument("--skip-months", action="store_true", help="no months model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.cpu_only:
        result["cpu_per_poll"] = cpu_per_poll(args)
        print(json.dumps(result, indent=2) if args.json else result)
        return 0
    if not args.rebalance_only and not args.list_only and not args.skip_months:
        result["months_model"] = months_model(args.months_feeds, args.months_polls)
    if not args.months_only:
        base = int(os.environ.get("NEWSWIRE_BENCH_PORT_BASE", "36000"))
        settings = Settings(
            home=BENCH_HOME,
            kafka_port=base + 850,
            kafka_controller_port=base + 851,
            kafka_heap="1g",
            kafka_bootstrap=args.bootstrap or f"127.0.0.1:{base + 850}",
            poller_metrics_port=0,
        )
        local = None
        started_here = False
        if not args.bootstrap:
            try:
                from workshop.stack import LocalStack  # type: ignore[import-not-found]
            except ImportError:
                from pipeline.stack import LocalStack
            local = LocalStack(settings, dist_dir=DIST, services=("kafka",))
            started_here = not local.status().healthy
            local.up()
        try:
            if args.rebalance_only:
                result["rebalance"] = rebalance(args, settings)
            else:
                result["poller"] = run(args, settings)
        finally:
            if local is not None and started_here:
                local.down()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two ``newswire poll`` processes over 200 feeds (real Kafka, loopback feed server).

Acceptance (issue 3): the two never poll the same feed at once; when one is killed with
SIGKILL the other takes its feeds over; after the restart no item is published twice and
none is lost.

What is checked, and how:
- "at once": the feed server counts requests of the same path that are answered at the
  same time (each answer takes 50 ms), and every path's requests switch between pollers
  only at the few rebalances of the run (two pollers sharing a feed would alternate);
- "takes over": after the SIGKILL the survivor requests every feed the killed one had;
- "exactly once": the raw topic, read as read_committed (what the worker reads), holds
  every item ever served exactly once. The kill happens while both pollers are
  publishing; the poller publishes a feed's articles and its state in one Kafka
  transaction and the next owner of a partition fences the last one, so this holds
  whatever moment the kill hits (see ``AtomicKafkaStateStore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

if TYPE_CHECKING:  # types only: feed fixtures come from tests.plugins.feeds
    from tests.plugins.feeds import FeedServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
FEEDS = 200
PARTITIONS = 8


@pytest.fixture()
def server(feed_server: FeedServer) -> FeedServer:
    return feed_server


class Feeds:
    """200 small RSS feeds that gain one item per feed at each ``grow()``."""

    def __init__(self, server: FeedServer, route: Any, rss: Any) -> None:
        self.server = server
        self.route, self.rss = route, rss
        self.generation = 0
        self.paths = [f"/group/{i}.xml" for i in range(FEEDS)]
        self.items: set[str] = set()
        self.grow(items=2)

    def grow(self, items: int = 1) -> None:
        self.generation += items
        for i, path in enumerate(self.paths):
            links = [
                (f"Feed {i} item {j}", f"http://site.test/f{i}/{j}") for j in range(self.generation)
            ]
            self.items.update(link for _, link in links)
            self.server.routes[path] = self.route(
                body=self.rss(f"Feed {i}", links[::-1]), delay=0.05
            )


class Poller:
    """One ``python -m pipeline poll`` process with its own User-Agent and log file."""

    def __init__(self, name: str, env: dict[str, str], feeds_file: Path, log_dir: Path) -> None:
        self.name = name
        self.agent = f"newswire-test-poller/{name}"
        self.log_path = log_dir / f"poller-{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "poll", "--feeds", str(feeds_file)],
            env={**env, "NEWSWIRE_USER_AGENT": self.agent},
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the parse pool goes with it
        )

    def events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if event in line:
                with_json = line[line.find("{") :]
                try:
                    out.append(json.loads(with_json))
                except ValueError:
                    continue
        return out

    def assigned_feeds(self) -> int | None:
        """Feeds of the last assignment (None before the first)."""
        found = self.events("poller.partitions_assigned")
        return int(found[-1]["feeds"]) if found else None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """SIGTERM: a clean stop. SIGKILL: a crash of the whole process group (poller,
        forkserver and parse workers), as when a container or machine dies."""
        if self.proc.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything the poller left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return code


def wait_for(
    what: str, condition: Callable[[], bool], timeout: float, pollers: list[Poller]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for p in pollers:
            assert p.proc.poll() is None, (
                f"poller {p.name} exited: {p.log_path.read_text()[-3000:]}"
            )
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.log_path.read_text()[-2000:]}" for p in pollers)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def published(read_committed: Any) -> Callable[[str, str], Counter[str]]:
    """``published(bootstrap, topic)``: how often each item URL is in the raw topic
    (committed records only)."""

    def count(bootstrap: str, topic: str) -> Counter[str]:
        values = asyncio.run(read_committed(bootstrap, topic))
        return Counter(json.loads(v)["url"] for v in values)

    return count


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()


def test_two_pollers_split_hand_over_and_publish_once(
    stack: Any,
    server: FeedServer,
    tmp_path: Path,
    feed_route: Any,
    rss_feed: Any,
    published: Callable[[str, str], Counter[str]],
) -> None:
    run = uuid.uuid4().hex[:8]
    raw_topic = f"test.group.raw.{run}"
    asyncio.run(create_topic(stack.kafka_bootstrap, raw_topic))
    feeds = Feeds(server, feed_route, rss_feed)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(yaml.safe_dump([{"url": server.url(p)} for p in feeds.paths]))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")},
        "NEWSWIRE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "NEWSWIRE_TOPIC_RAW": raw_topic,
        "NEWSWIRE_TOPIC_POLLER_STATE": f"test.group.state.{run}",
        "NEWSWIRE_TOPIC_FEEDS": f"test.group.feeds.{run}",
        "NEWSWIRE_POLLER_GROUP": f"test-group-{run}",
        "NEWSWIRE_POLLER_PARTITIONS": str(PARTITIONS),
        "NEWSWIRE_POLLER_SESSION_TIMEOUT_MS": "6000",  # the broker's minimum
        "NEWSWIRE_POLLER_METRICS_PORT": "0",
        "NEWSWIRE_ALLOW_PRIVATE_FEEDS": "true",
        "NEWSWIRE_POLL_INTERVAL": "1",
        "NEWSWIRE_POLL_MIN_INTERVAL": "1",
        "NEWSWIRE_POLL_MAX_INTERVAL": "2",
        "NEWSWIRE_POLL_BACKOFF_BASE": "1",
        "NEWSWIRE_POLL_BACKOFF_CAP": "2",
        "NEWSWIRE_POLL_PARSE_WORKERS": "1",
        "NEWSWIRE_POLL_CONCURRENCY": "32",
        "NEWSWIRE_POLL_PER_HOST": "32",  # every feed is on the one loopback host
        "NEWSWIRE_POLL_HOST_GAP": "0",
        "NEWSWIRE_LOG_FORMAT": "json",
        "NEWSWIRE_LOG_LEVEL": "INFO",
    }
    a = Poller("a", env, feeds_file, tmp_path)
    b = Poller("b", env, feeds_file, tmp_path)
    pollers = [a, b]
    try:

        def by_agent(since: float = 0.0) -> dict[str, set[str]]:
            seen: dict[str, set[str]] = defaultdict(set)
            with server.lock:
                for path, agent, start, _ in server.timeline:
                    if start >= since:
                        seen[agent].add(path)
            return seen

        def split_and_everything_published() -> bool:
            n_a, n_b = a.assigned_feeds(), b.assigned_feeds()
            if not (n_a and n_b and n_a + n_b == FEEDS):
                return False
            return set(published(stack.kafka_bootstrap, raw_topic)) == feeds.items

        # 1. Both up: they split the feeds and publish the first items.
        wait_for("both pollers assigned, first items", split_and_everything_published, 45, pollers)
        split_at = time.time()
        feeds.grow()
        wait_for(
            "both pollers polling their share",
            lambda: set(published(stack.kafka_bootstrap, raw_topic)) == feeds.items,
            20,
            pollers,
        )
        # Every feed was polled since the split (it published its new item), each by
        # the one poller it is assigned to.
        share = by_agent(split_at)
        owned_by_a = share[a.agent]
        assert len(owned_by_a) == a.assigned_feeds()
        assert len(share[b.agent]) == b.assigned_feeds()
        assert owned_by_a | share[b.agent] == {*feeds.paths}

        # 2. SIGKILL a while both publish new items; b takes a's feeds over.
        feeds.grow()
        time.sleep(0.3)
        a.stop(signal.SIGKILL)
        killed_at = time.time()
        pollers = [b]
        feeds.grow()
        wait_for(
            "b to take a's feeds over and publish everything",
            lambda: (
                owned_by_a <= by_agent(killed_at)[b.agent]
                and set(published(stack.kafka_bootstrap, raw_topic)) == feeds.items
            ),
            40,
            pollers,
        )
        assert b.assigned_feeds() == FEEDS

        # 3. Restart a: the feeds are split again, new items still published once.
        a2 = Poller("a2", env, feeds_file, tmp_path)
        pollers = [a2, b]
        wait_for(
            "a2 assigned",
            lambda: (
                (a2.assigned_feeds() or 0) > 0
                and (a2.assigned_feeds() or 0) + (b.assigned_feeds() or 0) == FEEDS
            ),
            30,
            pollers,
        )
        feeds.grow()
        wait_for(
            "everything published after the restart",
            lambda: set(published(stack.kafka_bootstrap, raw_topic)) == feeds.items,
            30,
            pollers,
        )
        restart_polled = by_agent(time.time() - 1.0)
    finally:
        codes = {p.name: p.stop() for p in pollers}
        if a.proc.poll() is None:
            a.stop(signal.SIGKILL)
    assert codes == {"a2": 0, "b": 0}, codes

    # Nothing polled twice at once, and feeds changed hands only at the rebalances.
    assert server.overlaps == []
    switches: Counter[str] = Counter()
    last: dict[str, str] = {}
    for path, agent, _, _ in sorted(server.timeline, key=lambda t: t[2]):
        if path in last and last[path] != agent:
            switches[path] += 1
        last[path] = agent
    rebalances = sum(len(p.events("poller.partitions_assigned")) for p in (a, a2, b))
    assert max(switches.values()) <= rebalances, switches.most_common(3)
    assert restart_polled.get(a2.agent), "the restarted poller polled nothing"

    # Every item exactly once in the committed raw topic.
    counts = published(stack.kafka_bootstrap, raw_topic)
    assert set(counts) == feeds.items
    duplicated = {url: n for url, n in counts.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} items published twice, e.g. {list(duplicated)[:3]}"
    assert len(feeds.items) == FEEDS * feeds.generation

"""The poller's failure modes against real Kafka (issue 3, acceptance, third bullet).

One real :class:`Poller` with the atomic Kafka state store the CLI uses polls, from the
loopback feed server, a few good eval feeds mixed with hostile ones: a 500, a 429 with
``Retry-After``, an oversize body, a gzip decompression bomb, a billion-laughs feed and
an external-entity feed that points at a secret file. A second poller with private
addresses refused polls two feeds on private (non-loopback) addresses. What is checked:

- the raw topic (read_committed) holds exactly the good feeds' entries (counts from
  ``manifest.json``), nothing of a bad feed, and never the secret;
- the state topic holds, per bad feed, the failure count, the error and the next poll:
  the 500 feed's wait grows cycle after cycle (fake clock), the 429 feed is not polled
  before its ``Retry-After``, and no feed in backoff is requested before its time;
- a second poller instance loaded from the state topic continues those schedules;
- the private feeds are refused by the URL/IP safety checks before any connection;
- every failure is logged with the feed and its reason, and the secret is in no log.

``NEWSWIRE_ALLOW_PRIVATE_FEEDS=true`` (needed for the loopback server) allows every
non-public address, private ranges included, so the private feeds get a poller of their
own with ``allow_private_feeds=False``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import logging
import socket
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohappyeyeballs
import pytest
import structlog
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.settings import Settings
from pipeline.sources import http as http_module
from pipeline.sources import safety
from pipeline.sources.coordination import AtomicKafkaStateStore, ensure_poller_topics
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.poller import Poller
from pipeline.sources.safety import UnsafeURLError
from pipeline.sources.state import RECORD_FIELDS, SCHEDULE_FIELDS, FeedState

if TYPE_CHECKING:  # types only: feed fixtures come from tests.plugins.feeds
    from tests.plugins.feeds import FeedServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.eval_feeds,
]

#: Good feeds: RSS 2.0, Atom, windows-1251 and undeclared Latin-1 (each entry distinct).
GOOD = (
    "bbc_world.rss.xml",
    "heise_online_2026.atom.xml",
    "oren_ru_windows-1251.rss.xml",
    "uol_noticias_latin1_nodecl.rss.xml",
)
#: Hostile paths of the feed server: (text of the stored error, reason label logged).
BAD = {
    "/status/500": ("HTTP 500", "http_5xx"),
    "/status/429": ("HTTP 429", "rate_limited"),
    "/oversize": ("exceeds 10485760 bytes", "too_large"),
    "/bomb": ("exceeds 10485760 bytes after decompression", "too_large"),
    "/billion-laughs": ("unsafe XML", "bad_feed"),
    "/xxe": ("unsafe XML: external entity", "bad_feed"),
}
RETRY_AFTER = 3600.0  # what the server's 429 answers
BACKOFF_BASE = 60.0
#: Feeds on private, non-loopback addresses: an IP literal and a name that "resolves"
#: (patched resolver, no DNS) to a private address. Nothing may ever connect to them.
PRIVATE_IP_URL = "http://10.0.0.1:8080/feed.xml"
PRIVATE_NAME = "feeds.intranet.newswire.test"
PRIVATE_NAME_IP = "192.168.1.1"
PRIVATE_NAME_URL = f"http://{PRIVATE_NAME}/rss.xml"


class FakeClock:
    """The poller's clock: unix seconds that only move when the test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class NetSpy:
    """What the safety checks refused, what was resolved, where connections went."""

    url_refusals: dict[str, str] = dataclasses.field(default_factory=dict)
    address_refusals: dict[str, str] = dataclasses.field(default_factory=dict)
    resolved: list[str] = dataclasses.field(default_factory=list)
    connections: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture()
def server(tmp_path: Path, feed_server: FeedServer) -> tuple[FeedServer, str]:
    """The loopback feed server with the eval feeds and the failure modes; the XXE feed
    references a secret file of this test, whose content is returned."""
    secret = f"NEWSWIRE-SECRET-{uuid.uuid4().hex}"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(secret + "\n")
    srv = feed_server
    srv.add_eval_feeds()
    srv.add_failure_modes(secret_file=str(secret_file))
    return srv, secret


@pytest.fixture()
def net(monkeypatch: pytest.MonkeyPatch) -> NetSpy:
    """Spies on the safety checks the poller calls, a resolver that answers
    ``PRIVATE_NAME`` with a private address (no DNS query), and a guard on every
    outgoing feed connection that refuses (and records) anything not on loopback."""
    spy = NetSpy()
    real_check_url = safety.check_url
    real_check_addresses = safety.check_addresses
    real_resolve = ThreadedResolver.resolve
    real_connect = aiohappyeyeballs.start_connection

    def check_url(url: str, *, allow_private: bool) -> None:
        try:
            real_check_url(url, allow_private=allow_private)
        except UnsafeURLError as exc:
            spy.url_refusals[url] = exc.reason
            raise

    def check_addresses(url: str, addresses: list[str], *, allow_private: bool) -> None:
        try:
            real_check_addresses(url, addresses, allow_private=allow_private)
        except UnsafeURLError as exc:
            spy.address_refusals[url] = exc.reason
            raise

    async def resolve(
        self: ThreadedResolver, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        spy.resolved.append(host)
        if host == PRIVATE_NAME:
            return [
                ResolveResult(
                    hostname=host, host=PRIVATE_NAME_IP, port=port,
                    family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST,
                )
            ]  # fmt: skip
        return await real_resolve(self, host, port, family)

    async def start_connection(addr_infos: list[Any], **kwargs: Any) -> socket.socket:
        hosts = [str(info[4][0]) for info in addr_infos]
        spy.connections.extend(hosts)
        if not all(ipaddress.ip_address(h).is_loopback for h in hosts):
            raise OSError(f"test guard: no connection to {hosts}")
        return await real_connect(addr_infos, **kwargs)

    monkeypatch.setattr(http_module, "check_url", check_url)
    monkeypatch.setattr(http_module, "check_addresses", check_addresses)
    monkeypatch.setattr(ThreadedResolver, "resolve", resolve)
    monkeypatch.setattr(aiohappyeyeballs, "start_connection", start_connection)
    return spy


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()


def state_history(values: list[bytes]) -> dict[str, list[FeedState]]:
    """The state records of each feed URL, oldest first (a key lives in one partition)."""
    history: dict[str, list[FeedState]] = defaultdict(list)
    for value in values:
        state = FeedState.from_json(value)
        history[state.url].append(state)
    return history


def waits(states: list[FeedState]) -> list[float]:
    return [s.next_poll_at - (s.last_poll_at or 0.0) for s in states]


async def test_failing_feeds_back_off_in_kafka_state_and_publish_nothing(
    stack: Any,
    server: tuple[FeedServer, str],
    net: NetSpy,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    feeds_dir: Path,
    isolated: Any,
    read_committed: Any,
) -> None:
    srv, secret = server
    caplog.set_level(logging.INFO)
    bootstrap = stack.kafka_bootstrap
    settings: Settings = isolated(stack.settings, "pollfail")
    config = settings.model_copy(
        update={
            "allow_private_feeds": True,  # the loopback feed server
            "poll_backoff_base": BACKOFF_BASE,
            "poll_backoff_cap": 24 * 3600.0,
            "poll_max_bytes": 10 * 1024 * 1024,
            "poll_timeout": 15.0,
            "poll_per_host": 16,  # every feed is on the one loopback host
            "poll_host_gap": 0,
            "poll_parse_workers": 2,
            "poller_partitions": 4,
            "poller_metrics_port": 0,
        }
    )
    private_config = config.model_copy(update={"allow_private_feeds": False})
    await ensure_poller_topics(bootstrap, config)
    await create_topic(bootstrap, settings.topic_raw, 4)

    manifest = {m["file"]: m for m in json.loads((feeds_dir / "manifest.json").read_text())}
    good = {srv.url(f"/feeds/{name}"): manifest[name]["entries"] for name in GOOD}
    bad = {srv.url(path): path for path in BAD}
    feeds = [FeedConfig(url=url, name=url.rsplit("/", 1)[-1]) for url in [*good, *bad]]
    private_feeds = [FeedConfig(url=PRIVATE_IP_URL), FeedConfig(url=PRIVATE_NAME_URL)]
    url_500, url_429 = srv.url("/status/500"), srv.url("/status/429")
    clock = FakeClock(float(int(time.time())))

    def new_poller(
        feed_list: list[FeedConfig], cfg: Settings
    ) -> tuple[Poller, AtomicKafkaStateStore]:
        store = AtomicKafkaStateStore(bootstrap, cfg, settings.topic_raw)
        return Poller(cfg, feed_list, None, store, clock=clock), store

    cycles: list[float] = []  # the clock of each cycle of the main pollers
    hits: list[dict[str, int]] = []  # server hits per bad path after each cycle
    schedules: list[dict[str, float]] = []  # next_poll_at per bad URL after each cycle

    async def cycle(poller: Poller, at: float) -> None:
        """One ``run_once`` at fake time ``at``; a feed in backoff must be requested iff
        its next poll (as the state store has it) is due."""
        before = {p: srv.hits[p] for p in BAD}
        due = {
            url: (s := poller.states.get(url_key(url))) is None or s.next_poll_at <= at
            for url in bad
        }
        clock.now = at
        summary = await poller.run_once()
        for url, path in bad.items():
            assert srv.hits[path] - before[path] == (1 if due[url] else 0), (path, at)
        errors = {s.url: s.last_error for s in poller.states.values() if s.last_error}
        assert all(poller.states[url_key(url)].last_error is None for url in good), errors
        assert summary.failed == sum(due.values()), errors
        assert summary.skipped == len(bad) - sum(due.values())
        assert summary.polled == len(good) + sum(due.values())
        cycles.append(at)
        hits.append({p: srv.hits[p] for p in BAD})
        schedules.append({url: poller.states[url_key(url)].next_poll_at for url in bad})

    with structlog.testing.capture_logs() as logs:
        # -- poller A: three cycles, each when the 500 feed is due again ---------------
        poller_a, store_a = new_poller(feeds, config)
        try:
            await cycle(poller_a, clock.now)
            for _ in range(2):
                await cycle(poller_a, poller_a.states[url_key(url_500)].next_poll_at)
            states_a = {
                k: FeedState.from_json(s.to_json()) for k, s in poller_a.states.items()
            }  # fmt: skip
        finally:
            await poller_a.close()
            await store_a.close()

        # -- private feeds: refused by the safety checks, state in the same topic ------
        poller_p, store_p = new_poller(private_feeds, private_config)
        try:
            summary_p = await poller_p.run_once()
        finally:
            await poller_p.close()
            await store_p.close()
        assert summary_p.failed == 2 and summary_p.new_items == 0

        # -- poller B: a restart, state loaded from Kafka; the schedules go on ---------
        poller_b, store_b = new_poller(feeds, config)
        try:
            await poller_b.load_state()
            for url in bad:
                loaded, before = poller_b.states[url_key(url)], states_a[url_key(url)]
                assert loaded == before, url  # schedule, failures, error, validators
            for url in good:  # 304s change only the schedule: not written (by design)
                loaded, before = poller_b.states[url_key(url)], states_a[url_key(url)]
                assert {
                    f: getattr(loaded, f) for f in RECORD_FIELDS if f not in SCHEDULE_FIELDS
                } == {f: getattr(before, f) for f in RECORD_FIELDS if f not in SCHEDULE_FIELDS}, url
            due_500 = poller_b.states[url_key(url_500)].next_poll_at
            due_429 = poller_b.states[url_key(url_429)].next_poll_at
            assert due_500 < due_429
            srv.requests.clear()
            await cycle(poller_b, due_500 - 1)  # neither 500 nor 429 is due yet
            await cycle(poller_b, due_500)  # the 500 feed is, the 429 feed is not
            await cycle(poller_b, due_429)  # Retry-After over: the 429 feed is polled
            # Good feeds after the restart: conditional requests, 304s, nothing new.
            conditional = [h for p, h in srv.requests if p.startswith("/feeds/")]
            assert len(conditional) == 3 * len(good)
            assert all("if-none-match" in h for h in conditional)
        finally:
            await poller_b.close()
            await store_b.close()

    # -- the raw topic: exactly the good feeds' entries, once --------------------------
    raw_values = await read_committed(bootstrap, settings.topic_raw)
    articles = [json.loads(v) for v in raw_values]
    per_feed: dict[str, int] = defaultdict(int)
    for article in articles:
        per_feed[article["source"]["feed_url"]] += 1
    assert dict(per_feed) == good
    assert len({a["id"] for a in articles}) == len(articles)
    titles = {a["title"] for a in articles}
    assert "В Бузулуке главные стройплощадки – детсад и Ледовый дворец" in titles
    assert "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno" in titles

    # -- the state topic: failures, errors and schedules of the bad feeds ---------------
    state_values = await read_committed(bootstrap, config.topic_poller_state)
    history = state_history(state_values)
    for url, path in bad.items():
        records = history[url]
        last = records[-1]
        text, _reason = BAD[path]
        assert len(records) == srv.hits[path] == last.consecutive_failures, path
        assert [r.consecutive_failures for r in records] == list(range(1, len(records) + 1))
        assert all(r.last_outcome == "error" and text in (r.last_error or "") for r in records)
        assert last.total_items == 0 and last.seen == b"" and last.etag is None
        assert last.next_poll_at == schedules[-1][url]
        # Never requested before it was due: each poll at or after the previous schedule.
        for earlier, later in itertools.pairwise(records):
            assert (later.last_poll_at or 0) >= earlier.next_poll_at, path
    assert all(r.last_status == 500 for r in history[url_500])
    assert all(r.last_status == 429 for r in history[url_429])

    # The 500 feed: polled at every cycle it was due, waits growing (equal jitter:
    # failure n waits within [base * 2**(n-2), base * 2**(n-1)]).
    w500 = waits(history[url_500])
    assert len(w500) == 5  # 3 cycles of A, 2 of the 3 of B
    for n, wait in enumerate(w500, start=1):
        assert BACKOFF_BASE * 2.0 ** (n - 2) <= wait <= BACKOFF_BASE * 2.0 ** (n - 1), w500
    assert all(b > a for a, b in itertools.pairwise(w500)), w500
    # The 429 feed: polled once by A, then not before its Retry-After (B's third cycle).
    w429 = waits(history[url_429])
    assert len(w429) == 2 and all(w >= RETRY_AFTER for w in w429), w429
    assert [h["/status/429"] for h in hits] == [1, 1, 1, 1, 1, 2]
    assert history[url_429][1].last_poll_at == cycles[-1]

    # -- private addresses: refused by the URL / address checks, no connection ---------
    assert "10.0.0.1 is a private address" in net.url_refusals[PRIVATE_IP_URL]
    assert "10.0.0.1" not in net.resolved  # refused before any DNS or connection
    assert PRIVATE_NAME_URL not in net.url_refusals  # a name passes the URL check ...
    assert PRIVATE_NAME in net.resolved  # ... and is refused once resolved
    assert f"{PRIVATE_NAME_IP} is a private address" in net.address_refusals[f"//{PRIVATE_NAME}"]
    assert net.connections and set(net.connections) == {"127.0.0.1"}
    for url, ip in ((PRIVATE_IP_URL, "10.0.0.1"), (PRIVATE_NAME_URL, PRIVATE_NAME_IP)):
        (state,) = history[url]
        assert state.consecutive_failures == 1 and state.last_status is None
        assert f"refused: {ip} is a private address" in (state.last_error or ""), state
        assert state.next_poll_at > (state.last_poll_at or 0)

    # -- logs: every failure with feed and reason; the secret nowhere -------------------
    failed = [e for e in logs if e["event"] == "poller.feed_failed"]
    for url, path in bad.items():
        reasons = {e["reason"] for e in failed if e["feed"] == url}
        assert reasons == {BAD[path][1]}, (path, reasons)
        assert sum(1 for e in failed if e["feed"] == url) == srv.hits[path]
    for url in (PRIVATE_IP_URL, PRIVATE_NAME_URL):
        assert [e["reason"] for e in failed if e["feed"] == url] == ["refused"]
    out, err = capfd.readouterr()
    leaks = {
        "raw topic": b"".join(raw_values).decode("utf-8", "replace"),
        "state topic": b"".join(state_values).decode("utf-8", "replace"),
        "structlog": repr(logs),
        "stdout/stderr": out + err,
        "logging": caplog.text,
    }  # fmt: skip
    assert [where for where, text in leaks.items() if secret in text] == []


def url_key(url: str) -> str:
    return FeedConfig(url=url).key

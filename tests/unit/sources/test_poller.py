"""Poller logic: pure functions, then the poller against a loopback feed server with an
in-memory state store and a list as the "Kafka" publisher."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.models import RawArticle
from pipeline.settings import Settings
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.fulltext import extract_main_text
from pipeline.sources.health import per_day
from pipeline.sources.http import Fetcher, SafeResolver
from pipeline.sources.poller import Poller
from pipeline.sources.safety import UnsafeURLError
from pipeline.sources.service import poll_command, wait_for_feeds
from pipeline.sources.state import MemoryStateStore

if TYPE_CHECKING:  # types only: the feed fixtures come from the tests.plugins.feeds plugin
    from tests.plugins.feeds import FeedServer

CONFIG = Settings(
    allow_private_feeds=True,
    poll_min_interval=60,
    poll_max_interval=3600,
    poll_backoff_base=10,
    poll_backoff_cap=24 * 3600,
    poll_timeout=10,
    poll_max_bytes=10 * 1024 * 1024,
    poller_metrics_port=0,
)

# -- pure logic --------------------------------------------------------------------------


def test_items_per_day_moves_towards_the_pace() -> None:
    assert per_day(0.0, 10, 86400.0 * 7) == pytest.approx(10 / 7)
    assert per_day(5.0, 0, None) == 5.0
    half = per_day(0.0, 1, 3600.0)  # 24/day over an hour, weighted by an hour of a week
    assert 0 < half < 24


# -- against a loopback server -------------------------------------------------------


@pytest.fixture(scope="module")
def server(feed_server_factory: Callable[[], FeedServer]) -> FeedServer:
    srv = feed_server_factory()
    srv.add_eval_feeds()
    return srv


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[RawArticle]] = []
        self.fail = False

    async def __call__(self, articles: list[RawArticle]) -> int:
        if self.fail:
            raise RuntimeError("kafka down")
        self.batches.append(list(articles))
        return len(articles)

    @property
    def articles(self) -> list[RawArticle]:
        return [a for batch in self.batches for a in batch]


_POLLERS: list[Poller] = []


@pytest.fixture(autouse=True)
async def _close_pollers() -> Any:
    yield
    while _POLLERS:
        await _POLLERS.pop().close()


def make_poller(
    feeds: list[FeedConfig], **config: Any
) -> tuple[Poller, Collector, MemoryStateStore]:
    collector = Collector()
    store = MemoryStateStore()
    cfg = CONFIG.model_copy(update=config)
    poller = Poller(
        cfg, feeds, collector, store, executor=ThreadPoolExecutor(2), rng=random.Random(7)
    )
    _POLLERS.append(poller)
    return poller, collector, store


def manifest(feeds_dir: Path) -> dict[str, dict[str, Any]]:
    return {m["file"]: m for m in json.loads((feeds_dir / "manifest.json").read_text())}


needs_eval = pytest.mark.eval_feeds


@needs_eval
async def test_first_poll_publishes_every_entry_then_304s(
    server: FeedServer, feeds_dir: Path
) -> None:
    feeds = [
        FeedConfig(url=server.url(f"/feeds/{name}"), name=name) for name in manifest(feeds_dir)
    ]
    poller, collector, store = make_poller(feeds)
    summary = await poller.run_once()
    assert summary.polled == 20 and summary.failed == 0
    by_feed: dict[str, list[RawArticle]] = {}
    for article in collector.articles:
        by_feed.setdefault(article.source.feed_url or "", []).append(article)
    for name, item in manifest(feeds_dir).items():
        got = by_feed[server.url(f"/feeds/{name}")]
        # every distinct entry once (al-monitor lists 3 stories 4 times: same id)
        distinct = {a.canonical_url for a in got}
        assert len(got) == len(distinct)
        if name != "almonitor.rss.xml":
            assert len(got) == item["entries"], name
        assert all(a.published_at is not None for a in got)
    assert len(collector.articles) == sum(m["entries"] for m in manifest(feeds_dir).values()) - 9
    titles = {a.title for a in collector.articles}
    assert "Mãe de utente é a nova presidente da Raríssimas" in titles
    assert "В Бузулуке главные стройплощадки – детсад и Ледовый дворец" in titles
    assert "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno" in titles
    assert store.saves == 20
    state = store.states[feeds[0].key]
    assert state.etag and state.last_modified and state.last_status == 200

    server.requests.clear()
    second = await poller.run_once()
    assert second.not_modified == 20 and second.new_items == 0
    assert len(collector.articles) == sum(m["entries"] for m in manifest(feeds_dir).values()) - 9
    conditional = [h for p, h in server.requests if p.startswith("/feeds/")]
    assert len(conditional) == 20
    assert all("if-none-match" in h and "if-modified-since" in h for h in conditional)
    assert all("Newswire" in h["user-agent"] for h in conditional)


async def test_feed_gaining_two_items_publishes_exactly_two(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    items = [(f"Story {i}", f"http://site.test/s/{i}") for i in range(5)]
    server.routes["/grow"] = feed_route(body=rss_feed("Grow", items))
    feed = FeedConfig(url=server.url("/grow"))
    poller, collector, _ = make_poller([feed])
    await poller.run_once()
    assert len(collector.articles) == 5
    server.routes["/grow"] = feed_route(
        body=rss_feed(
            "Grow", [("New A", "http://site.test/s/a"), ("New B", "http://site.test/s/b"), *items]
        )
    )
    await poller.run_once()
    assert [a.title for a in collector.batches[-1]] == ["New A", "New B"]
    assert len(collector.articles) == 7
    assert poller.states[feed.key].last_outcome == "new"


async def test_server_ignoring_validators_is_skipped_by_body_hash(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    server.routes["/noetag"] = feed_route(
        body=rss_feed("N", [("x", "http://site.test/x")]), etag=False
    )
    feed = FeedConfig(url=server.url("/noetag"))
    poller, collector, _ = make_poller([feed])
    await poller.run_once()
    await poller.run_once()
    assert len(collector.articles) == 1
    assert poller.states[feed.key].last_outcome == "unchanged"


async def test_500_backs_off_with_growing_intervals_and_keeps_retrying(server: FeedServer) -> None:
    server.add_failure_modes()
    feed = FeedConfig(url=server.url("/status/500"))
    poller, _collector, _ = make_poller([feed])
    now = [1_000_000.0]
    poller.clock = lambda: now[0]
    waits = []
    for _ in range(6):
        state = await poller.poll_feed(feed)
        waits.append(state.next_poll_at - now[0])
        now[0] = state.next_poll_at
    assert state.consecutive_failures == 6
    assert state.last_status == 500 and "HTTP 500" in (state.last_error or "")
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert waits[-1] > 4 * waits[0]
    assert server.hits["/status/500"] >= 6
    # run_once skips a feed still in backoff, polls it when due
    skipped = await poller.run_once()
    assert skipped.skipped == 0 and skipped.polled == 1  # due exactly now
    now[0] -= 1
    state.next_poll_at = now[0] + 10
    assert (await poller.run_once()).skipped == 1


async def test_429_retry_after_is_honoured(server: FeedServer) -> None:
    server.add_failure_modes()
    feed = FeedConfig(url=server.url("/status/429"))
    poller, _, _ = make_poller([feed])
    before = server.hits["/status/429"]
    state = await poller.poll_feed(feed)
    assert state.last_status == 429
    assert state.next_poll_at - (state.last_poll_at or 0) >= 3600
    poller.reschedule_all()
    assert poller.scheduler.ready(poller.clock() + 3000, 10) == []
    assert (await poller.run_once()).skipped == 1
    assert server.hits["/status/429"] == before + 1


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("/oversize", "exceeds 10485760 bytes"),
        ("/bomb", "after decompression"),
        ("/billion-laughs", "unsafe XML"),
        ("/xxe", "unsafe XML: external entity"),
        ("/html", "not a feed"),
    ],
)
async def test_hostile_responses_fail_cleanly(server: FeedServer, path: str, match: str) -> None:
    server.add_failure_modes(secret_file=str(Path(__file__)))
    feed = FeedConfig(url=server.url(path))
    poller, collector, _ = make_poller([feed])
    state = await asyncio.wait_for(poller.poll_feed(feed), timeout=20)
    assert state.last_outcome == "error"
    assert match in (state.last_error or "")
    assert state.consecutive_failures == 1
    assert collector.articles == []
    assert "test_hostile_responses" not in (state.last_error or "")


async def test_private_address_refused_without_opt_in(server: FeedServer) -> None:
    feed = FeedConfig(url=server.url("/feeds/bbc_world.rss.xml"))
    poller, collector, _ = make_poller([feed], allow_private_feeds=False)
    before = server.hits["/feeds/bbc_world.rss.xml"]
    state = await poller.poll_feed(feed)
    assert "refused" in (state.last_error or "") and "loopback" in (state.last_error or "")
    assert server.hits["/feeds/bbc_world.rss.xml"] == before
    assert collector.articles == []


async def test_resolver_refuses_names_resolving_to_private_addresses() -> None:
    # Names are checked when they resolve (every connection, redirects included).
    with pytest.raises(UnsafeURLError, match="loopback"):
        await SafeResolver(allow_private=False).resolve("localhost", 80)
    assert await SafeResolver(allow_private=True).resolve("localhost", 80)


async def test_permanent_redirect_updates_stored_url_and_encodings(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    body = rss_feed("R", [("Moved", "http://site.test/m")])
    server.routes["/new-home"] = feed_route(body=body, encoding="gzip")
    server.routes["/old-home"] = feed_route(status=301, location="/new-home")
    server.routes["/temp"] = feed_route(status=302, location="/new-home")
    feeds = [FeedConfig(url=server.url("/old-home")), FeedConfig(url=server.url("/temp"))]
    poller, collector, _ = make_poller(feeds)
    await poller.run_once()
    assert poller.states[feeds[0].key].fetch_url == server.url("/new-home")
    assert poller.states[feeds[1].key].fetch_url is None
    assert [a.title for a in collector.articles] == ["Moved", "Moved"]


async def test_failed_publish_keeps_items_for_next_poll(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    server.routes["/pub"] = feed_route(body=rss_feed("P", [("One", "http://site.test/1")]))
    feed = FeedConfig(url=server.url("/pub"))
    poller, collector, _ = make_poller([feed])
    collector.fail = True
    state = await poller.poll_feed(feed)
    assert state.last_outcome == "error" and state.etag is None and state.seen == b""
    collector.fail = False
    state = await poller.poll_feed(feed)
    assert [a.title for a in collector.articles] == ["One"]


async def test_process_pool_parsing(server: FeedServer, feed_route: Any, rss_feed: Any) -> None:
    items = [(f"Item {i}", f"http://site.test/pool/{i}") for i in range(100)]
    server.routes["/pool"] = feed_route(body=rss_feed("Pool", items))
    feed = FeedConfig(url=server.url("/pool"))
    collector = Collector()
    poller = Poller(CONFIG, [feed], collector, MemoryStateStore())
    try:
        await poller.run_once()
    finally:
        await poller.close()
    assert len(collector.articles) == 100


async def test_run_forever_polls_when_due_and_stops(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    server.routes["/loop"] = feed_route(body=rss_feed("L", [("x", "http://site.test/l")]))
    feed = FeedConfig(url=server.url("/loop"))
    poller, collector, _ = make_poller([feed], poll_first_spread=0)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run_forever(stop))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if collector.articles:
            break
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert len(collector.articles) == 1


ARTICLE_PAGE = """<!DOCTYPE html><html><head><title>Harbour reopens</title></head><body>
<nav><a href="/">Home</a> | <a href="/world">World</a> | <a href="/sport">Sport</a></nav>
<header><p>Subscribe to our newsletter for the latest headlines!</p></header>
<article><h1>Harbour reopens after storm</h1>
<p>The harbour of Port Ellen reopened on Tuesday after a week of repairs to the sea wall,
the island council said, and the first ferry arrived shortly after noon.</p>
<p>Engineers replaced forty metres of the breakwater that the storm had torn away, working
through two nights of gales to finish before the weekend traffic of fishing boats.</p>
<p>Council leader Morag Campbell thanked the crews and said a review of the island's coastal
defences would be published in the spring, with money set aside for further repairs.</p>
</article>
<footer><p>Copyright 2024 Island News. All rights reserved. Cookie settings.</p></footer>
</body></html>"""


async def test_fulltext_feed_gets_article_text_under_the_same_limits(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    server.routes["/article/harbour"] = feed_route(
        body=ARTICLE_PAGE.encode(), content_type="text/html; charset=utf-8"
    )
    server.routes["/article/huge"] = feed_route(
        body=b"<html><body><p>" + b"word " * 300_000 + b"</p></body></html>",
        content_type="text/html",
    )
    items = [
        ("Harbour", server.url("/article/harbour")),
        ("Huge", server.url("/article/huge")),
        ("Missing", server.url("/article/missing")),
    ]
    server.routes["/full"] = feed_route(body=rss_feed("Full", items))
    server.routes["/summary-only"] = feed_route(body=rss_feed("S", items[:1]))
    full = FeedConfig(url=server.url("/full"), fulltext=True)
    plain = FeedConfig(url=server.url("/summary-only"))
    poller, collector, _ = make_poller([full, plain], poll_max_bytes=1024 * 1024)
    server.requests.clear()
    await poller.run_once()
    by_feed: dict[str, list[RawArticle]] = {}
    for article in collector.articles:
        by_feed.setdefault(article.source.feed_url or "", []).append(article)
    bodies = {a.title: a.body for a in by_feed[full.url]}
    assert set(bodies) == {"Harbour", "Huge", "Missing"}  # none lost
    harbour = bodies["Harbour"] or ""
    assert "forty metres of the breakwater" in harbour and "Morag Campbell" in harbour
    assert "newsletter" not in harbour and "Cookie" not in harbour and "Sport" not in harbour
    assert not bodies["Huge"] and not bodies["Missing"]  # too large, 404: feed text kept
    # The feed without the flag fetched no page.
    paths = [p for p, _ in server.requests]
    assert paths.count("/article/harbour") == 1 and "/article/missing" in paths
    assert "breakwater" not in (by_feed[plain.url][0].body or "")
    # Pages go through the same Fetcher: with private addresses refused, so are pages.
    refused = await Fetcher(CONFIG.model_copy(update={"allow_private_feeds": False})).__aenter__()
    try:
        with pytest.raises(UnsafeURLError):
            await refused.fetch("http://10.1.2.3/article", {})
    finally:
        await refused.close()
    assert extract_main_text(b"<html><body></body></html>") is None


async def test_poll_once_without_feeds_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "feeds.yaml"
    empty.write_text("[]\n")
    settings = Settings(poller_metrics_port=0, kafka_bootstrap="127.0.0.1:1")
    assert await poll_command(settings, empty, once=True) == 2


async def test_long_running_poll_without_feeds_idles_until_sigterm(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    settings = Settings(poller_metrics_port=0, kafka_bootstrap="127.0.0.1:1")
    task = asyncio.create_task(poll_command(settings, missing, recheck=0.05))
    await asyncio.sleep(0.5)
    assert not task.done()  # no feed file: up and idle, not exited
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, timeout=5) == 0


async def test_wait_for_feeds_rereads_the_list(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("[]\n")
    stop = asyncio.Event()
    task = asyncio.create_task(wait_for_feeds(path, stop, recheck=0.05))
    await asyncio.sleep(0.2)
    assert not task.done()
    path.write_text("- url: https://example.com/feed.xml\n")
    feeds = await asyncio.wait_for(task, timeout=5)
    assert feeds is not None and [f.url for f in feeds.enabled] == ["https://example.com/feed.xml"]
    stop.set()
    assert await wait_for_feeds(tmp_path / "none.yaml", stop) is None


async def test_revision_published_once_and_304_writes_no_state(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    """A changed title is published again (same id, newer fetched_at), once; a poll that
    changes only the schedule writes no state."""
    items = [("One", "http://site.test/r/1"), ("Two", "http://site.test/r/2")]
    server.routes["/rev"] = feed_route(body=rss_feed("Rev", items))
    feed = FeedConfig(url=server.url("/rev"))
    poller, collector, store = make_poller([feed])
    await poller.run_once()
    assert [a.title for a in collector.articles] == ["One", "Two"]
    saves = store.saves
    await poller.run_once()  # 304
    assert poller.states[feed.key].last_outcome == "not_modified"
    await poller.run_once()
    assert store.saves == saves  # nothing but the schedule changed
    server.routes["/rev"] = feed_route(
        body=rss_feed("Rev", [("One, corrected", "http://site.test/r/1"), items[1]])
    )
    await poller.run_once()
    await poller.run_once()
    revised = collector.articles[2:]
    assert [a.title for a in revised] == ["One, corrected"]
    assert revised[0].id == collector.articles[0].id
    assert revised[0].fetched_at > collector.articles[0].fetched_at
    state = poller.states[feed.key]
    assert state.revisions == 1 and state.total_items == 2


async def test_gone_feed_is_disabled_then_picked_up_by_a_probe(
    server: FeedServer, feed_route: Any, rss_feed: Any
) -> None:
    server.routes["/gone"] = feed_route(status=410, body=b"gone", etag=False)
    feed = FeedConfig(url=server.url("/gone"))
    poller, collector, store = make_poller([feed])
    now = [1_000_000.0]
    poller.clock = lambda: now[0]
    state = await poller.poll_feed(feed)
    assert state.disabled == "gone (HTTP 410)"
    assert state.next_poll_at - now[0] == CONFIG.poll_probe_interval
    assert store.states[feed.key].disabled == "gone (HTTP 410)"
    server.routes["/gone"] = feed_route(body=rss_feed("Back", [("b", "http://site.test/b")]))
    now[0] = state.next_poll_at
    state = await poller.poll_feed(feed)
    assert state.disabled is None and state.consecutive_failures == 0
    assert [a.title for a in collector.articles] == ["b"]
    assert store.states[feed.key].disabled is None


async def test_429_holds_the_whole_host_in_the_scheduler(server: FeedServer) -> None:
    server.add_failure_modes()
    limited = FeedConfig(url=server.url("/status/429"))
    sibling = FeedConfig(url=server.url("/status/500"))  # same host
    poller, _, _ = make_poller([limited, sibling], poll_first_spread=0)
    now = poller.clock()
    await poller.poll_feed(limited)
    poller.scheduler.schedule(sibling.key, sibling.host, now)
    assert poller.scheduler.ready(now + 60, 10) == []
    assert [s.key for s in poller.scheduler.ready(now + 3601, 10)] == [sibling.key]

"""Fixtures over the loopback feed server (tests/fixtures/feeds_server.py, which bench/
also runs as a script): tests take these instead of importing it.

The ``eval_feeds`` marker skips a test, with a reason, when the evaluation feeds
(``../shared/eval/feeds``) are absent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.feeds_server import FEEDS_DIR, FeedServer, Route, rss_with_items


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "eval_feeds: needs the evaluation feeds (skipped with a reason without them)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("eval_feeds") and not FEEDS_DIR.exists():
        pytest.skip(f"no eval feeds at {FEEDS_DIR}")


@pytest.fixture(scope="session")
def feeds_dir() -> Path:
    """The evaluation feeds (``manifest.json`` and the feed files)."""
    return FEEDS_DIR


@pytest.fixture(scope="session")
def feed_route() -> type[Route]:
    """The ``Route`` class: what the feed server answers on one path."""
    return Route


@pytest.fixture(scope="session")
def rss_feed() -> Callable[[str, list[tuple[str, str]]], bytes]:
    """``rss_feed(title, [(item title, link), ...])``: an RSS 2.0 document."""
    return rss_with_items


@pytest.fixture(scope="session")
def feed_server_factory() -> Iterator[Callable[[], FeedServer]]:
    """Starts loopback feed servers on free ports; all are stopped at the end."""
    started: list[FeedServer] = []

    def start() -> FeedServer:
        server = FeedServer().start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A loopback feed server of the test's own (no routes yet), stopped after the test."""
    server = FeedServer().start()
    yield server
    server.stop()

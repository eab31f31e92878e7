"""Relative entry links: resolved against xml:base, else the feed's URL (fetched) or the
feed's site link (replayed from a file), and identified by the article-id contract."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.models import RawArticle
from pipeline.sources.entries import link_base
from pipeline.sources.parse import parse_feed
from pipeline.sources.seeds import SeedError, read_file

FEED_URL = "https://feeds.example.test/news/rss.xml"


def contract_id(canonical: str) -> str:
    """docs/architecture.md: hex of the first 16 bytes of SHA-256 of the canonical URL."""
    return hashlib.sha256(canonical.encode("utf-8")).digest()[:16].hex()


def rss(base: str = "", site: str = "https://www.site.example.test/world/") -> bytes:
    base_attr = f' xml:base="{base}"' if base else ""
    site_link = f"<link>{site}</link>" if site else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"{base_attr}><channel><title>Site</title>{site_link}
<item><title>Root</title><link>/2024/story-1.html?utm_source=rss</link></item>
<item><title>Sibling</title><link>story-2.html</link><guid isPermaLink="false">g2</guid></item>
</channel></rss>""".encode()


def atom(base: str = "", site: str = "https://www.site.example.test/world/") -> bytes:
    base_attr = f' xml:base="{base}"' if base else ""
    site_link = f'<link rel="alternate" href="{site}"/>' if site else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"{base_attr}><title>Site</title>{site_link}
<id>urn:site</id><updated>2024-01-01T00:00:00Z</updated>
<entry><title>Root</title><link href="/2024/story-1.html?utm_source=rss"/><id>urn:1</id>
<updated>2024-01-01T00:00:00Z</updated></entry>
<entry><title>Sibling</title><link href="story-2.html"/><id>urn:2</id>
<updated>2024-01-01T00:00:00Z</updated></entry>
</feed>""".encode()


def replayed(tmp_path: Path, name: str, content: bytes) -> list[RawArticle]:
    path = tmp_path / name
    path.write_bytes(content)
    items = list(read_file(path, "replay-test", 10_000))
    errors = [item for item in items if isinstance(item, SeedError)]
    assert not errors, errors
    return [item for item in items if isinstance(item, RawArticle)]


def assert_urls(articles: list[RawArticle], expected: list[str]) -> None:
    assert [a.url for a in articles] == expected
    for article in articles:
        assert article.url is not None
        assert article.canonical_url is not None
        assert article.id == contract_id(article.canonical_url)


@pytest.mark.parametrize("document", [rss, atom], ids=["rss2", "atom"])
def test_fetched_feed_resolves_against_its_own_url(document: Callable[..., bytes]) -> None:
    parsed = parse_feed(document(), feed_url=FEED_URL)
    assert_urls(
        parsed.articles,
        [
            "https://feeds.example.test/2024/story-1.html?utm_source=rss",
            "https://feeds.example.test/news/story-2.html",
        ],
    )
    assert parsed.articles[0].canonical_url == "https://feeds.example.test/2024/story-1.html"


@pytest.mark.parametrize(
    ("name", "document"), [("feed.rss", rss), ("feed.atom", atom)], ids=["rss2", "atom"]
)
def test_replayed_file_resolves_against_the_site_link(
    tmp_path: Path, name: str, document: Callable[..., bytes]
) -> None:
    articles = replayed(tmp_path, name, document())
    assert_urls(
        articles,
        [
            "https://www.site.example.test/2024/story-1.html?utm_source=rss",
            "https://www.site.example.test/world/story-2.html",
        ],
    )
    assert articles[0].source.domain == "site.example.test"


@pytest.mark.parametrize("document", [rss, atom], ids=["rss2", "atom"])
def test_xml_base_wins_for_fetched_and_replayed_feeds(
    tmp_path: Path, document: Callable[..., bytes]
) -> None:
    content = document(base="https://cdn.example.test/en/")
    expected = [
        "https://cdn.example.test/2024/story-1.html?utm_source=rss",
        "https://cdn.example.test/en/story-2.html",
    ]
    assert_urls(parse_feed(content, feed_url=FEED_URL).articles, expected)
    assert_urls(replayed(tmp_path, "feed.xml", content), expected)


def test_relative_xml_base_in_a_replayed_file_resolves_against_the_site_link(
    tmp_path: Path,
) -> None:
    articles = replayed(tmp_path, "feed.atom", atom(base="/archive/"))
    assert_urls(
        articles,
        [
            "https://www.site.example.test/2024/story-1.html?utm_source=rss",
            "https://www.site.example.test/archive/story-2.html",
        ],
    )


def test_replayed_file_without_a_site_link_keeps_no_file_urls(tmp_path: Path) -> None:
    articles = replayed(tmp_path, "feed.rss", rss(site=""))
    assert [a.url for a in articles] == [None, None]
    # No URL: the GUID identifies the second entry, content the first; never a file path.
    assert all(len(a.id) == 32 for a in articles)


def test_replayed_json_feed_resolves_against_home_page_url(tmp_path: Path) -> None:
    document = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J",'
        b' "home_page_url": "https://j.example.test/blog/",'
        b' "items": [{"id": "1", "url": "post-1", "content_text": "x"}]}'
    )
    path = tmp_path / "feed.feed"
    path.write_bytes(document)
    parsed = parse_feed(document, feed_url=path.as_uri())
    assert_urls(parsed.articles, ["https://j.example.test/blog/post-1"])


def test_link_base_prefers_an_http_feed_url_then_the_site_link() -> None:
    assert link_base(FEED_URL, "https://site.test/") == FEED_URL
    assert link_base("file:///tmp/feed.xml", "https://site.test/") == "https://site.test/"
    assert link_base("file:///tmp/feed.xml", "/relative/") is None
    assert link_base("file:///tmp/feed.xml", None) is None

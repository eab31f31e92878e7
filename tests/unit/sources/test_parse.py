"""parse_feed / html_to_text against the real feeds of ../shared/eval/feeds and crafted input."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import BadInputError
from pipeline.identity import article_id, canonical_url
from pipeline.models import Source
from pipeline.sources.dates import parse_localized_date
from pipeline.sources.entries import entry_to_article
from pipeline.sources.html_text import html_to_text
from pipeline.sources.parse import parse_feed
from pipeline.sources.xml_safety import check_xml_safety

EVAL_FEEDS = Path(os.environ.get("NEWSWIRE_EVAL_DIR", "../shared/eval")) / "feeds"
if not EVAL_FEEDS.is_absolute():
    EVAL_FEEDS = (Path(__file__).resolve().parents[3] / EVAL_FEEDS).resolve()
needs_eval = pytest.mark.skipif(
    not (EVAL_FEEDS / "manifest.json").exists(), reason=f"no eval feeds at {EVAL_FEEDS}"
)


def manifest() -> list[dict[str, Any]]:
    if not (EVAL_FEEDS / "manifest.json").exists():
        return []
    data: list[dict[str, Any]] = json.loads((EVAL_FEEDS / "manifest.json").read_text())
    return data


def parse_file(name: str, **kwargs: Any) -> Any:
    return parse_feed(
        (EVAL_FEEDS / name).read_bytes(), feed_url=f"https://feeds.test/{name}", **kwargs
    )


@needs_eval
@pytest.mark.parametrize("item", manifest(), ids=lambda m: m["file"])
def test_every_eval_feed_matches_manifest(item: dict[str, Any]) -> None:
    parsed = parse_file(item["file"])
    assert len(parsed.articles) == item["entries"]
    assert parsed.entry_count == item["entries"]
    assert parsed.version == item["version"]
    assert parsed.title is not None and parsed.title.startswith(item["title"])
    ids = {a.id for a in parsed.articles}
    # Same article, same id: al-monitor really lists 3 stories 4 times each.
    assert len(ids) == len({a.canonical_url for a in parsed.articles})
    for article in parsed.articles:
        assert article.title
        assert article.url and article.url.startswith(("http://", "https://"))
        assert article.canonical_url == canonical_url(article.url)
        assert article.id == article_id(article.url)
        assert article.published_at is not None  # every eval feed dates its items
        assert article.published_at.utcoffset() is not None
        assert article.published_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert article.source.feed_url == f"https://feeds.test/{item['file']}"
        for text in (article.title, article.summary or "", article.body or ""):
            assert "<p" not in text and "</" not in text and "&amp;" not in text
            assert "\ufffd" not in text and "Ã" not in text  # no mojibake


@needs_eval
def test_iso_8859_1_feed_text() -> None:
    parsed = parse_file("jn_pt_iso8859-1.rss.xml")
    assert parsed.encoding == "iso-8859-1"
    assert parsed.title == "Jornal de Notícias - Últimas Notícias"
    first = parsed.articles[0]
    assert first.title == "Mãe de utente é a nova presidente da Raríssimas"
    assert first.published_at == datetime(2018, 1, 3, 13, 47, tzinfo=UTC)
    assert first.tags == ["Nacional"]


@needs_eval
def test_windows_1251_feed_text_and_ttl() -> None:
    parsed = parse_file("oren_ru_windows-1251.rss.xml")
    assert parsed.encoding == "windows-1251"
    first = parsed.articles[0]
    assert first.title == "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"
    assert first.summary is not None and first.summary.startswith("Работы по возведению")
    assert parsed.ttl_seconds == 1800


@needs_eval
def test_undeclared_latin1_feed_text_and_localized_dates() -> None:
    parsed = parse_file("uol_noticias_latin1_nodecl.rss.xml")
    assert parsed.bozo_reason is not None and "encoding" in parsed.bozo_reason.lower()
    first = parsed.articles[0]
    assert first.title == (
        "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    )
    assert first.summary is not None and first.summary.startswith("Líder na pesquisa Ibope")
    # "Seg, 24 Set 2018 19:42:40 -0300" (Portuguese names feedparser cannot read)
    assert first.published_at == datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)


@needs_eval
def test_http_charset_does_not_override_declared_encoding() -> None:
    # The server lies (utf-8) but the document declares ISO-8859-1: the document wins.
    parsed = parse_file(
        "dailymail_iso8859-1.rss.xml",
        response_headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    assert parsed.encoding == "iso-8859-1"
    assert parsed.title == "Home | Mail Online"


def test_http_charset_used_when_document_is_silent() -> None:
    doc = (
        "<rss version='2.0'><channel><title>Новости</title><item><title>Привет мир</title>"
        "<link>http://a.test/1</link></item></channel></rss>"
    ).encode("windows-1251")
    parsed = parse_feed(
        doc,
        feed_url="http://a.test/f",
        response_headers={"content-type": "application/rss+xml; charset=windows-1251"},
    )
    assert parsed.title == "Новости"
    assert parsed.articles[0].title == "Привет мир"


@needs_eval
def test_sy_update_period_and_authors_and_categories() -> None:
    dw = parse_file("dw_all.rdf.xml")
    assert dw.update_period_seconds == 900  # hourly, 4 times
    assert dw.min_interval_hint == 900
    guardian = parse_file("guardian_us.rss.xml", tags=("us",))
    first = guardian.articles[0]
    assert first.authors == ["David Smith in Washington"]
    assert first.tags[:3] == ["us", "Donald Trump", "State of the Union address"]


@needs_eval
def test_atom_feed_dates_are_utc() -> None:
    heise = parse_file("heise_online_2026.atom.xml")
    assert heise.version == "atom10"
    assert heise.articles[0].title == "Top 10: Das beste günstige Tablet im Test"
    assert heise.articles[0].published_at == datetime(2026, 4, 25, 18, 0, tzinfo=UTC)


RSS_TEMPLATE = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://www.site.test/</link>
<language>fr</language>
{items}
</channel></rss>"""


def rss(items: str) -> bytes:
    return RSS_TEMPLATE.format(items=items).encode()


def test_relative_links_resolved_and_canonical() -> None:
    parsed = parse_feed(
        rss("<item><title>A</title><link>/a/1?utm_source=x&amp;id=3#frag</link></item>"),
        feed_url="https://Site.test:443/feeds/rss.xml",
    )
    article = parsed.articles[0]
    assert article.url == "https://Site.test:443/a/1?utm_source=x&id=3#frag"
    assert article.canonical_url == "https://site.test/a/1?id=3"
    assert article.id == article_id(article.url)
    assert article.language_hint == "fr"
    assert article.source.domain == "site.test"


def test_missing_date_stays_none_never_now() -> None:
    parsed = parse_feed(
        rss("<item><title>A</title><link>https://a.test/1</link><pubDate>garbage</pubDate></item>"),
        feed_url="https://a.test/f",
    )
    assert parsed.articles[0].published_at is None


def test_updated_used_when_no_published() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
<entry><title>E</title><id>urn:x:1</id><updated>2024-03-01T10:00:00+02:00</updated>
<content type="html">&lt;p&gt;One&lt;/p&gt;&lt;p&gt;Two&lt;/p&gt;</content></entry></feed>"""
    parsed = parse_feed(atom, feed_url="https://a.test/atom")
    article = parsed.articles[0]
    assert article.published_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert article.url is None
    assert article.id == article_id(None, feed_url="https://a.test/atom", guid="urn:x:1")
    assert article.body == "One\n\nTwo"


def test_entry_without_link_or_guid_gets_stable_id() -> None:
    doc = rss("<item><title>Only a title</title></item>")
    first = parse_feed(doc, feed_url="https://a.test/f").articles[0]
    second = parse_feed(doc, feed_url="https://a.test/f").articles[0]
    assert first.id == second.id and len(first.id) == 32


def test_json_feed() -> None:
    doc = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "JF",
            "home_page_url": "https://www.jf.test/",
            "language": "en",
            "authors": [{"name": "Feed Author"}],
            "items": [
                {
                    "id": "1",
                    "url": "https://jf.test/p/1?utm_medium=x",
                    "title": "First",
                    "content_html": "<p>Hello <b>there</b></p><p>Second para</p>",
                    "date_published": "2024-05-01T12:00:00-04:00",
                    "tags": ["a", "b"],
                },
                {
                    "id": "2",
                    "content_text": "Plain\n\nText",
                    "date_modified": "2024-05-02T00:00:00Z",
                },
            ],
        }
    ).encode()
    parsed = parse_feed(doc, feed_url="https://jf.test/feed.json", tags=("x",))
    assert parsed.version == "json11"
    assert parsed.title == "JF"
    one, two = parsed.articles
    assert one.canonical_url == "https://jf.test/p/1"
    assert one.body == "Hello there\n\nSecond para"
    assert one.published_at == datetime(2024, 5, 1, 16, 0, tzinfo=UTC)
    assert one.tags == ["x", "a", "b"]
    assert one.authors == ["Feed Author"]
    assert two.url is None and two.body == "Plain\n\nText"
    assert two.published_at == datetime(2024, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   ",
        b"<html><head><title></title></head><body><p>hello</p></body></html>",
        b"just some text",
        b'{"not": "a feed"}',
        b"\x00\x01\x02binary",
    ],
)
def test_not_a_feed_raises_bad_input(content: bytes) -> None:
    with pytest.raises(BadInputError) as info:
        parse_feed(content, feed_url="https://a.test/f")
    assert info.value.source == "https://a.test/f"


def test_oversize_document_refused() -> None:
    with pytest.raises(BadInputError, match="exceeds"):
        parse_feed(rss("<item><title>x</title></item>"), feed_url="u", max_bytes=50)


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1 if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b']><rss version="2.0"><channel><title>&lol9;</title>'
    b"<item><title>&lol9;</title><link>http://x.test/a</link></item></channel></rss>"
)


def test_billion_laughs_refused_fast() -> None:
    start = time.monotonic()
    with pytest.raises(BadInputError, match="expands other entities"):
        parse_feed(BILLION_LAUGHS, feed_url="https://evil.test/f")
    assert time.monotonic() - start < 0.5


def test_external_entity_refused_and_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    for decl in (
        f'<!ENTITY xxe SYSTEM "file://{secret}">',
        f'<!ENTITY xxe PUBLIC "-//x//EN" "file://{secret}">',
        f'<!ENTITY % pe SYSTEM "file://{secret}"> %pe;',
    ):
        doc = (
            f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{decl}\n]>\n<rss version="2.0"><channel>'
            "<title>t</title><item><title>&xxe;</title><link>http://x.test/a</link></item>"
            "</channel></rss>"
        ).encode()
        with pytest.raises(BadInputError, match="unsafe XML") as info:
            parse_feed(doc, feed_url="https://evil.test/f")
        assert "TOP-SECRET" not in str(info.value)


def test_plain_text_entities_allowed() -> None:
    doc = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY nbsp "&#160;"><!ENTITY copy "(c)">]>'
        b'<rss version="2.0"><channel><title>T&copy;</title>'
        b"<item><title>A&nbsp;B</title><link>http://x.test/a</link></item></channel></rss>"
    )
    check_xml_safety(doc, source="s")
    parsed = parse_feed(doc, feed_url="http://x.test/f")
    assert parsed.articles[0].title == "A B"


def test_html_to_text() -> None:
    html = (
        "<div><h1>Title</h1><p>Hello&nbsp;<b>bold</b> &amp; <a href='/x'>link</a>.</p>"
        "<script>alert(1)</script><style>p{}</style>"
        "<p>Line one<br>line   two</p><ul><li>item 1</li><li>item 2</li></ul></div>"
        "<img src='x.jpg' alt='picture'/>tail"
    )
    assert html_to_text(html) == (
        "Title\n\nHello bold & link.\n\nLine one\nline two\n\nitem 1\n\nitem 2\n\ntail"
    )
    assert html_to_text("") == ""
    assert html_to_text("plain &lt;p&gt;escaped&lt;/p&gt; text") == "plain\n\nescaped\n\ntext"
    assert html_to_text("a < b and c > d") == "a < b and c > d"


def test_entry_to_article_from_plain_dict() -> None:
    article = entry_to_article(
        {
            "title": "Hi &amp; bye",
            "link": "https://a.test/x?fbclid=1",
            "authors": [{"name": "A"}, {"name": "A"}, {"email": "b@x"}],
            "tags": [{"term": "T1"}, {"term": "t1"}, {"label": "T2"}],
            "published_parsed": time.strptime("2020-01-02 03:04:05", "%Y-%m-%d %H:%M:%S"),
            "summary": "<p>s</p>",
        },
        feed_url="https://a.test/f",
        source=Source(name="S"),
        tags=("cfg",),
    )
    assert article.title == "Hi & bye"
    assert article.canonical_url == "https://a.test/x"
    assert article.authors == ["A", "b@x"]
    assert article.tags == ["cfg", "T1", "T2"]
    assert article.published_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert article.summary == "s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
        ("Mi, 03 Mär 2021 10:00:00 +0100", datetime(2021, 3, 3, 9, 0, tzinfo=UTC)),
        ("lun, 5 dic 2022 08:15 GMT", datetime(2022, 12, 5, 8, 15, tzinfo=UTC)),
        ("no date here", None),
        ("31 Fev 2020 10:00:00", None),
    ],
)
def test_parse_localized_date(text: str, expected: datetime | None) -> None:
    assert parse_localized_date(text) == expected

"""Feed list loading (YAML, OPML), validation errors naming the entry, import/export."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.errors import ConfigError
from pipeline.sources.feeds import (
    FeedConfig,
    import_opml,
    load_feeds,
    parse_duration,
    parse_opml,
    parse_yaml_feeds,
    to_opml,
    to_yaml,
)

YAML = """
defaults:
  tags: [news]
feeds:
  - url: https://feeds.bbci.co.uk/news/world/rss.xml
    name: BBC World
    tags: [world]
    interval: 10m
  - url: ftp://example.org/feed.xml
    name: Bad scheme
  - name: No URL
  - url: https://example.org/rss
    interval: 5
  - url: https://feeds.bbci.co.uk/news/world/rss.xml
    name: Duplicate
  - url: https://www.theguardian.com/world/rss
    enabled: false
    fulltext: true
    colour: red
  - https://www.aljazeera.com/xml/rss/all.xml
  - 42
"""


def test_yaml_good_entries_load_and_bad_ones_are_named() -> None:
    result = parse_yaml_feeds(YAML)
    assert [f.url for f in result.feeds] == [
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        "https://www.aljazeera.com/xml/rss/all.xml",
    ]
    bbc = result.feeds[0]
    assert bbc.name == "BBC World"
    assert bbc.tags == ("news", "world")
    assert bbc.interval == 600
    assert bbc.enabled and not bbc.fulltext
    messages = [str(e) for e in result.errors]
    assert len(messages) == 6
    assert messages[0].startswith("feed #2 (Bad scheme):") and "not http or https" in messages[0]
    assert messages[1].startswith("feed #3 (No URL):") and "url" in messages[1]
    assert messages[2].startswith("feed #4 (https://example.org/rss):")
    assert "below the 60s minimum" in messages[2]
    assert messages[3] == "feed #5 (Duplicate): duplicate of feed #1"
    assert messages[4].startswith("feed #6 (https://www.theguardian.com/world/rss):")
    assert "colour: unknown field" in messages[4]
    assert messages[5].startswith("feed #8 (int):")


def test_disabled_entry_kept_but_not_enabled() -> None:
    result = parse_yaml_feeds(
        "- {url: 'https://a.test/rss', enabled: false, fulltext: true}\n- https://b.test/rss\n"
    )
    assert len(result.feeds) == 2
    assert [f.url for f in result.enabled] == ["https://b.test/rss"]
    assert result.feeds[0].fulltext


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90", 90.0), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_broken_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_feeds(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_feeds(tmp_path / "missing.yaml")


OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="World">
      <outline type="rss" text="BBC World" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
      <outline text="Europe">
        <outline type="rss" title="DW" text="Deutsche Welle"
          xmlUrl="https://rss.dw.com/rdf/rss-en-all" category="/eu/germany,politics"/>
      </outline>
    </outline>
    <outline type="rss" text="Broken" xmlUrl="javascript:alert(1)"/>
    <outline type="rss" text="Heise" xmlUrl="https://www.heise.de/rss/heise-atom.xml"
      interval="1800" fulltext="true"/>
  </body>
</opml>
"""


def test_opml_import_with_folders_as_tags() -> None:
    result = parse_opml(OPML)
    assert [f.name for f in result.feeds] == ["BBC World", "DW", "Heise"]
    assert result.feeds[0].tags == ("World",)
    assert result.feeds[1].tags == ("World", "Europe", "eu", "germany", "politics")
    assert result.feeds[2].interval == 1800 and result.feeds[2].fulltext
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith("feed #3 (Broken):")


def test_opml_round_trip_and_yaml_round_trip(tmp_path: Path) -> None:
    feeds = parse_opml(OPML).feeds
    again = parse_opml(to_opml(feeds)).feeds
    assert again == feeds
    assert parse_yaml_feeds(to_yaml(feeds)).feeds == feeds


def test_opml_entities_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.opml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<opml><body><outline xmlUrl="https://a.test/&x;"/></body></opml>'
    )
    with pytest.raises(ConfigError, match="unsafe XML"):
        load_feeds(path)


def test_import_opml_merges_into_yaml(tmp_path: Path) -> None:
    opml = tmp_path / "in.opml"
    opml.write_text(OPML)
    target = tmp_path / "feeds.yaml"
    target.write_text(
        "feeds:\n  - url: https://feeds.bbci.co.uk/news/world/rss.xml\n    name: Mine\n"
    )
    result = import_opml(opml, target)
    assert [f.name for f in result.added] == ["DW", "Heise"]
    assert [f.name for f in result.skipped] == ["BBC World"]
    assert len(result.errors) == 1
    loaded = load_feeds(target)
    assert [f.name for f in loaded.feeds] == ["Mine", "DW", "Heise"]
    # importing again adds nothing
    assert import_opml(opml, target).added == []


def test_feed_config_key_and_host() -> None:
    feed = FeedConfig(url="https://Feeds.Example.org/rss")
    assert feed.host == "feeds.example.org"
    assert len(feed.key) == 32 and feed.key == FeedConfig(url="https://Feeds.Example.org/rss").key


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("http://a.b/x", True),
        ("HTTPS://A.B:443/x?y#z", True),
        ("https://x.y:0", True),
        ("http://a.b?q=1", True),
        ("http://a:/", True),
        ("http://u@a/", True),
        ("http://[::1]/", True),
        ("http://é.fr/", True),
        ("http://a_b.c/", True),
        ("http://a:99999/", False),
        ("ftp://a/", False),
        ("http:///path", False),
        ("http://a.b:65536/", False),
    ],
)
def test_url_check_fast_path_agrees_with_the_full_check(url: str, valid: bool) -> None:
    # Plain URLs skip urlsplit (a 200,000-feed list loads faster); the verdict is the same.
    if valid:
        assert FeedConfig(url=url).url == url
    else:
        with pytest.raises(ValidationError):
            FeedConfig(url=url)

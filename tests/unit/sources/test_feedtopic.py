"""Feed list records of the feeds topic: round trip, bad records, tombstones."""

from __future__ import annotations

from pipeline.sources.feeds import FeedConfig
from pipeline.sources.feedtopic import _changes, feed_record, read_feed_record


def test_record_round_trip_keeps_only_what_differs() -> None:
    feed = FeedConfig(url="https://a.test/rss", name="A", tags=("x", "y"), interval=600)
    assert read_feed_record(feed_record(feed)) == feed
    assert feed_record(FeedConfig(url="https://b.test/rss")) == b'{"url":"https://b.test/rss"}'


def test_changes_sort_upserts_tombstones_and_bad_records() -> None:
    good = FeedConfig(url="https://a.test/rss")
    other = FeedConfig(url="https://b.test/rss")
    latest: dict[bytes, bytes | None] = {
        good.key.encode(): feed_record(good),
        other.key.encode(): None,
        b"k-bad": b'{"url": "ftp://nope"}',
        b"k-wrong": feed_record(FeedConfig(url="https://c.test/rss")),
    }
    upserts, removed, errors = _changes(latest)
    assert upserts == [good] and removed == [other.key]
    assert [e.entry for e in errors] == ["k-bad", "k-wrong"]
    assert "not http or https" in errors[0].problem
    assert "not the key of its url" in errors[1].problem

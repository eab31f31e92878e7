"""The packed item memory: new items, revisions once, bounded, the date floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.models import RawArticle
from pipeline.sources.seen import (
    ITEM_BYTES,
    MAX_ITEMS,
    content_hash,
    fingerprint,
    from_ids,
    pack,
    select,
    unpack,
)

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def art(i: int, title: str | None = None, dated: bool = True) -> RawArticle:
    return RawArticle(
        id=f"{i:032x}",
        title=title or f"t{i}",
        published_at=BASE + timedelta(hours=i) if dated else None,
    )


def ids(articles: list[RawArticle]) -> list[str]:
    return [a.id for a in articles]


def test_fingerprint_of_hex_ids_and_others() -> None:
    assert fingerprint("0" * 32) != fingerprint("0" * 31 + "1")
    assert 0 <= fingerprint("not hex at all, a guid") < 2**64
    assert fingerprint("x") != fingerprint("y")


def test_content_hash_covers_title_summary_body_and_is_never_zero() -> None:
    a = RawArticle(id="a", title="T", summary="S", body="B")
    assert content_hash(a) != content_hash(a.model_copy(update={"title": "T2"}))
    assert content_hash(a) != content_hash(a.model_copy(update={"summary": "S2"}))
    assert content_hash(a) != content_hash(a.model_copy(update={"body": "B2"}))
    assert content_hash(a) == content_hash(a.model_copy(update={"tags": ["x"]}))
    assert content_hash(RawArticle(id="e")) != 0


def test_new_then_nothing_then_a_revision_once() -> None:
    doc = [art(1), art(2), art(1)]  # a duplicate id counts once
    first = select(doc, b"", None, 100)
    assert ids(first.publish) == ids([art(1), art(2)]) and first.new == 2
    again = select(doc, first.seen, first.floor, 100)
    assert again.publish == [] and again.seen == first.seen
    edited = [art(1, title="t1, corrected"), art(2)]
    revised = select(edited, again.seen, again.floor, 100)
    assert ids(revised.publish) == [art(1).id] and revised.revisions == 1 and revised.new == 0
    assert select(edited, revised.seen, revised.floor, 100).publish == []


def test_memory_is_bounded_and_keeps_what_the_feed_shows() -> None:
    seen = b""
    floor = None
    for start in range(0, 1000, 10):  # a feed of 20 items, 10 new ones per poll
        chosen = select([art(i) for i in range(start + 19, start - 1, -1)], seen, floor, 50)
        seen, floor = chosen.seen, chosen.floor
        assert len(seen) <= 50 * ITEM_BYTES
    assert len(unpack(seen)) == 50
    assert select([art(i) for i in range(1009, 989, -1)], seen, floor, 50).publish == []


def test_document_over_the_cap_uses_the_date_floor() -> None:
    doc = [art(i) for i in range(300, 0, -1)]
    first = select(doc, b"", None, 100)
    assert first.new == 300 and len(unpack(first.seen)) == MAX_ITEMS
    dropped = 300 - MAX_ITEMS  # the newest MAX_ITEMS are kept
    assert first.floor == art(dropped).published_at.timestamp()  # type: ignore[union-attr]
    again = select(doc, first.seen, first.floor, 100)
    assert again.publish == []
    newer = select([art(301), *doc], again.seen, again.floor, 100)
    assert ids(newer.publish) == [art(301).id]


def test_undated_items_of_a_long_feed_past_the_cap_are_not_published_again() -> None:
    # A feed showing 100 undated items, cap 64: the memory grows to the 100 it shows,
    # so a change of the document (one new item on top) publishes that item only.
    doc = [art(i, dated=False) for i in range(100, 0, -1)]
    first = select(doc, b"", None, 64)
    assert first.new == 100 and len(unpack(first.seen)) == 100
    changed = [art(101, dated=False), *doc[:-1]]
    again = select(changed, first.seen, first.floor, 64)
    assert ids(again.publish) == [art(101).id]
    assert len(again.seen) <= MAX_ITEMS * ITEM_BYTES


def test_memory_never_exceeds_the_hard_bound() -> None:
    doc = [art(i, dated=False) for i in range(500, 0, -1)]
    chosen = select(doc, b"", None, 64)
    assert len(unpack(chosen.seen)) == MAX_ITEMS
    # The items kept are the document's first (newest) ones.
    assert fingerprint(art(500).id) in unpack(chosen.seen)
    assert fingerprint(art(1).id) not in unpack(chosen.seen)


def test_items_seen_earlier_fill_the_room_newest_first() -> None:
    first = select([art(i) for i in range(10)], b"", None, 10)
    second = select([art(20), art(21)], first.seen, first.floor, 10)
    kept = list(unpack(second.seen))
    assert len(kept) == 10
    assert fingerprint(art(9).id) not in kept and fingerprint(art(8).id) not in kept
    assert kept[-2:] == [fingerprint(art(21).id), fingerprint(art(20).id)]


def test_unknown_content_hash_is_adopted_silently() -> None:
    seen = from_ids([art(1).id])
    chosen = select([art(1)], seen, None, 10)
    assert chosen.publish == [] and unpack(chosen.seen) == {
        fingerprint(art(1).id): content_hash(art(1))
    }


def test_pack_unpack_and_a_torn_tail() -> None:
    items = [(1, 2), (2**64 - 1, 2**32 - 1)]
    packed = pack(items)
    assert unpack(packed) == dict(items)
    assert unpack(packed + b"\x01\x02") == dict(items)

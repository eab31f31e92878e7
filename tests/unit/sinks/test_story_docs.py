"""Story documents folded from articles and exact copies (pure)."""

from datetime import UTC, datetime, timedelta

from pipeline.sinks.story_docs import StoryItem, merge_story

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def item(n: int, source: str, *, minutes: int = 0, copy_of: str | None = None) -> StoryItem:
    return StoryItem(
        id=f"a{n}", cluster_id="c1", title=f"Title {n}", url=f"https://{source}/x{n}",
        source=source, domain=f"{source}.example", seen_at=T0 + timedelta(minutes=minutes),
        copy_of=copy_of, entities={"person": ["John Kerry"], "location": ["Moscow", "Geneva"]},
        topics=["politics"],
    )  # fmt: skip


def test_first_seen_sources_counts_and_timeline() -> None:
    doc = merge_story(None, [item(2, "reuters", minutes=70), item(1, "bbc", minutes=5)])
    doc = merge_story(doc, [item(3, "ap", minutes=-10, copy_of="a1")])
    assert doc["first_seen"] == "2026-11-20T07:50:00Z" and doc["first_source"] == "ap"
    assert doc["first_article"] == "a1"  # the copy's original is the story's first article
    assert doc["title"] == "Title 1"  # a copy does not rename a story it did not found
    assert doc["sources"] == ["ap", "bbc", "reuters"] and doc["source_count"] == 3
    assert (doc["article_count"], doc["copy_count"]) == (2, 1)
    assert doc["top_person"] == ["John Kerry"] and doc["top_topics"] == ["politics"]
    assert doc["timeline"] == [
        {"hour": "2026-11-20T07:00:00Z", "count": 1},
        {"hour": "2026-11-20T08:00:00Z", "count": 1},
        {"hour": "2026-11-20T09:00:00Z", "count": 1},
    ]


def test_merging_is_idempotent_per_article() -> None:
    once = merge_story(None, [item(1, "bbc"), item(2, "ap")])
    twice = merge_story(once, [item(2, "ap"), item(1, "bbc")])
    assert {**twice, "updated_at": None} == {**once, "updated_at": None}


def test_copy_records_round_trip_into_story_items() -> None:
    from pipeline.models import RawArticle, Source
    from pipeline.sinks.story_docs import copy_item, copy_record

    raw = RawArticle(id="c9", url="https://wire.example/x", title="T", fetched_at=T0,
                     source=Source(name="Wire", domain="wire.example"))  # fmt: skip
    item_ = copy_item(copy_record(raw, "a1", "c1"))
    assert (item_.id, item_.copy_of, item_.cluster_id, item_.source) == ("c9", "a1", "c1", "Wire")
    assert item_.seen_at == T0
    doc = merge_story(merge_story(None, [item(1, "bbc")]), [item_])
    assert doc["copy_count"] == 1 and "Wire" in doc["sources"]

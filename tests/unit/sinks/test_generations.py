"""Index generations: rollover conditions, placement of revisions, retirement (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.settings import Settings
from pipeline.sinks.bulk import bulk_operations
from pipeline.sinks.generations import (
    Generation,
    index_settings,
    locate_query,
    placement,
    previous_generation,
    retire_candidates,
    rollover_conditions,
    window_duplicates,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_rollover_conditions_follow_the_settings() -> None:
    settings = Settings(
        index_rollover_max_primary_shard_size="10gb",
        index_rollover_max_docs=5,
        index_rollover_max_age="7d",
    )
    assert rollover_conditions(settings) == {
        "max_primary_shard_size": "10gb",
        "max_docs": 5,
        "max_age": "7d",
    }
    none = Settings(index_rollover_max_primary_shard_size="", index_rollover_max_docs=None)
    assert rollover_conditions(none) == {}


def test_shard_and_replica_counts_are_settings() -> None:
    component = {
        "template": {"settings": {"index": {"number_of_shards": 1, "refresh_interval": "1s"}}}
    }
    body = index_settings(Settings(index_shards=3, index_replicas=2), component)
    index = body["template"]["settings"]["index"]
    assert index == {"number_of_shards": 3, "number_of_replicas": 2, "refresh_interval": "1s"}
    auto = index_settings(Settings(), component)["template"]["settings"]["index"]
    assert auto["auto_expand_replicas"] == "0-1" and "number_of_replicas" not in auto
    assert component["template"]["settings"]["index"]["number_of_shards"] == 1  # not mutated


def test_placement_maps_ids_to_their_generation_and_reports_doubles() -> None:
    hits = [
        {"_id": "a", "_index": "x-000001"},
        {"_id": "b", "_index": "x-000002"},
        {"_id": "a", "_index": "x-000003"},
    ]
    where, twice = placement(hits)
    assert where == {"a": "x-000003", "b": "x-000002"}
    assert twice == ["a"]
    query = locate_query(["a", "b"])
    assert query["query"] == {"ids": {"values": ["a", "b"]}}
    assert query["_source"] is False and query["size"] >= 4


def test_placed_documents_go_to_their_index_others_to_the_alias() -> None:
    ops = bulk_operations(
        "alias", [("old", 1, {"id": "old"}), ("new", 2, {"id": "new"})], {"old": "alias-000001"}
    )
    old, new = ops[0]["index"], ops[2]["index"]
    assert old["_index"] == "alias-000001" and "require_alias" not in old
    assert old["version_type"] == "external_gte" and old["version"] == 1
    assert new["_index"] == "alias" and new["require_alias"] is True


def _gen(name: str, days_ago: float | None, *, write: bool = False) -> Generation:
    newest = None if days_ago is None else NOW - timedelta(days=days_ago)
    return Generation(name, write, 10, 100, None, newest)


def test_retirement_deletes_only_whole_old_generations_never_the_write_index() -> None:
    generations = [
        _gen("g1", 400),
        _gen("g2", 100),
        _gen("g3", None),  # empty: age unknown, kept
        _gen("g4", 500, write=True),  # the write index is never retired
    ]
    assert [g.name for g in retire_candidates(generations, NOW, 365)] == ["g1"]
    assert [g.name for g in retire_candidates(generations, NOW, 30)] == ["g1", "g2"]
    assert retire_candidates(generations, NOW, None) == []  # off by default
    assert Settings().index_retention_days is None


def test_empty_old_generations_go_with_empty_only() -> None:
    generations = [_gen("g1", None), _gen("g2", 10), _gen("g3", None, write=True)]
    empty = [Generation("e1", False, 0, 0, None, None), *generations]
    assert [g.name for g in retire_candidates(empty, NOW, None, empty=True)] == ["e1"]
    assert retire_candidates(empty, NOW, None) == []


def test_previous_generation_by_name() -> None:
    assert previous_generation("news-articles-000007") == "news-articles-000006"
    assert previous_generation("news-articles-000010") == "news-articles-000009"
    assert previous_generation("news-articles-000001") is None
    assert previous_generation("plain") is None


def _got(index: str, doc_id: str, version: int, seq: int = 1) -> dict[str, object]:
    return {
        "_index": index,
        "_id": doc_id,
        "found": True,
        "_version": version,
        "_seq_no": seq,
        "_primary_term": 1,
    }


def test_window_duplicates_delete_the_older_copy_conditionally() -> None:
    old = [
        _got("g1", "a", 100, seq=5),  # older than its twin: goes
        _got("g1", "b", 300, seq=6),  # newer than its twin: the twin goes
        _got("g1", "c", 200, seq=7),  # a tie: the old generation's goes
        {"_index": "g1", "_id": "d", "found": False},
    ]
    new = [
        _got("g2", "a", 200, seq=1),
        _got("g2", "b", 250, seq=2),
        _got("g2", "c", 200, seq=3),
        _got("g2", "d", 100, seq=4),  # only in the write index: no duplicate
    ]
    assert window_duplicates(old, new) == [
        {"delete": {"_index": "g1", "_id": "a", "if_seq_no": 5, "if_primary_term": 1}},
        {"delete": {"_index": "g2", "_id": "b", "if_seq_no": 2, "if_primary_term": 1}},
        {"delete": {"_index": "g1", "_id": "c", "if_seq_no": 7, "if_primary_term": 1}},
    ]
    assert window_duplicates([], new) == []

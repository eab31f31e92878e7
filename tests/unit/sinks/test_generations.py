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
    retire_candidates,
    rollover_conditions,
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

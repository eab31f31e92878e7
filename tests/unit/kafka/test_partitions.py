"""Raising partitions (`setup --partitions / --poller-partitions`): the pure plans."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.kafka.partitions import PartitionChange, growth_plan
from pipeline.sources.repartition import StateRecord, state_moves
from pipeline.sources.state import partition_for


def test_growth_plan_raises_only_what_is_below_and_skips_missing_topics() -> None:
    plan = growth_plan({"raw": 4, "enriched": 8}, {"raw": 8, "enriched": 8, "new": 8})
    assert plan == [PartitionChange("raw", 4, 8)]


def test_fewer_partitions_than_a_topic_has_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot remove partitions"):
        growth_plan({"raw": 8}, {"raw": 4})
    with pytest.raises(ConfigError, match="at least one"):
        growth_plan({}, {"raw": 0})


def _keys_moving(old: int, new: int) -> tuple[str, str]:
    """A key that stays in its partition and one that moves, from ``old`` to ``new``."""
    stays = next(
        f"feed-{i}"
        for i in range(1000)
        if partition_for(f"feed-{i}", old) == partition_for(f"feed-{i}", new)
    )
    moves = next(
        f"feed-{i}"
        for i in range(1000)
        if partition_for(f"feed-{i}", old) != partition_for(f"feed-{i}", new)
    )
    return stays, moves


def test_state_moves_writes_moved_feeds_and_tombstones_their_old_copy() -> None:
    stays, moves = _keys_moving(4, 8)
    records = {
        stays: [StateRecord(partition_for(stays, 4), 3, b"s")],
        moves: [StateRecord(partition_for(moves, 4), 5, b"m")],
        "gone": [StateRecord(partition_for("gone", 4), 7, None)],  # tombstoned feed
    }
    writes, tombstones = state_moves(records, 8)
    assert writes == {moves: (partition_for(moves, 8), b"m")}
    assert tombstones == [(moves, partition_for(moves, 4))]


def test_an_interrupted_move_is_finished_without_writing_again() -> None:
    _, moves = _keys_moving(4, 8)
    old, new = partition_for(moves, 4), partition_for(moves, 8)
    records = {moves: [StateRecord(old, 5, b"m"), StateRecord(new, 2, b"m")]}
    writes, tombstones = state_moves(records, 8)
    assert writes == {} and tombstones == [(moves, old)]
    # already done: nothing at all
    assert state_moves({moves: [StateRecord(new, 2, b"m"), StateRecord(old, 6, None)]}, 8) == (
        {},
        [],
    )

"""Poller feed state: the record and its partition."""

from __future__ import annotations

from pipeline.sources.state import FeedState, partition_for


def test_seen_ids_bounded() -> None:
    state = FeedState(key="k", url="u")
    state.remember([str(i) for i in range(10)], limit=5)
    assert state.seen_ids == ["5", "6", "7", "8", "9"]
    assert FeedState.from_json(state.to_json()) == state


def test_partition_for_is_stable() -> None:
    assert partition_for("abc", 16) == partition_for("abc", 16)
    assert len({partition_for(str(i), 16) for i in range(200)}) == 16

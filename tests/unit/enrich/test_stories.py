"""The bounded story index: capacity, oldest-first eviction, window, lookups, records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pipeline.enrich.dedup import StoryRecord, assign_cluster, fingerprint
from pipeline.enrich.stories import (
    GENERATIONS,
    MERGE_EVERY,
    StoryIndex,
)


@pytest.fixture
def record(random_sig: Callable[[], np.ndarray]) -> Callable[..., StoryRecord]:
    """``record(n, sig=None, cluster=None)``: article ``a{n}``'s record (a new cluster of its
    own unless ``cluster`` is given; a random signature unless ``sig`` is)."""

    def make(n: int, sig: np.ndarray | None = None, cluster: str | None = None) -> StoryRecord:
        return StoryRecord(
            article_id=f"a{n}",
            cluster_id=cluster or f"a{n}",
            signature=random_sig() if sig is None else sig,
            fingerprint=fingerprint(f"text of article {n}"),
            new_cluster=cluster is None,
        )

    return make


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_bound_holds_and_the_oldest_go_first(record: Any) -> None:
    index = StoryIndex(80)
    assert index.capacity == 80 and index.generation_size == 80 // GENERATIONS
    for n in range(300):
        index.remember(record(n))
        assert len(index) <= 80
    held = len(index)
    assert 80 - index.generation_size <= held <= 80
    assert index.evicted == {"bound": 300 - held, "expired": 0}
    present = [
        n for n in range(300) if index.duplicate_of(fingerprint(f"text of article {n}"), "x")
    ]
    assert present == list(range(300 - held, 300))  # exactly the newest, in order
    assert index.clusters == held


def test_lookups_find_keys_merged_into_sorted_arrays_and_recent_ones(
    random_sig: Any, near: Any
) -> None:
    index = StoryIndex(10_000)
    count = 2 * MERGE_EVERY + 100  # two merges, then keys still in the recent dict
    sigs = [random_sig() for _ in range(count)]
    for n, sig in enumerate(sigs):
        assert assign_cluster(sig, index, f"a{n}", fp=fingerprint(f"text {n}")) == f"a{n}"
    for n in (0, MERGE_EVERY - 1, MERGE_EVERY, count - 1):
        assert assign_cluster(near(sigs[n]), index, f"near{n}") == f"a{n}"
        assert index.duplicate_of(fingerprint(f"text {n}"), "other") == f"a{n}"
        assert index.duplicate_of(fingerprint(f"text {n}"), f"a{n}") is None  # itself
    assert index.candidates(random_sig()) == {}
    assert index.duplicate_of(fingerprint("never seen"), "x") is None


def test_members_point_to_their_cluster_and_the_cluster_ends_with_its_founder(
    record: Any, random_sig: Any, near: Any
) -> None:
    index = StoryIndex(16)  # 8 generations of 2
    founder = random_sig()
    index.remember(record(0, founder))
    index.remember(record(1))
    member = near(founder, 0.2)
    assert assign_cluster(member, index, "m") == "a0"
    assert set(index.candidates(near(member, 0.1))) == {"a0"}
    for n in range(2, 16):  # the founder's generation is dropped by the 17th entry
        index.remember(record(n))
    assert len(index) == 15 and index.clusters == 14
    assert index.candidates(near(member, 0.1)) == {}  # the member is held, its founder not
    assert assign_cluster(near(founder, 0.1), index, "new") == "new"


def test_entries_past_the_window_are_ignored_then_dropped(record: Any) -> None:
    clock = Clock()
    index = StoryIndex(80, ttl_seconds=100, clock=clock)
    start = clock.now
    old = [record(n) for n in range(5)]
    for r in old:
        index.remember(r)
    clock.now = start + 50
    for n in range(5, 10):  # fills the first generation (10)
        index.remember(record(n))
    clock.now = start + 60
    for n in range(10, 13):  # the second
        index.remember(record(n))
    clock.now = start + 120  # the first five are past the window; their generation is not
    assert index.duplicate_of(fingerprint("text of article 0"), "x") is None
    assert index.candidates(old[0].signature) == {}
    assert index.duplicate_of(fingerprint("text of article 6"), "x") == "a6"
    assert index.expire() == 0 and len(index) == 13
    clock.now = start + 155  # the first generation's newest entry left the window too
    assert index.expire() == 10 and len(index) == 3
    assert index.evicted["expired"] == 10
    clock.now = start + 300
    assert index.expire() == 3 and len(index) == 0 and index.clusters == 0
    index.remember(record(99))  # a fresh generation after the open one was dropped
    assert index.duplicate_of(fingerprint("text of article 99"), "x") == "a99"
    remote_old = record(100)
    index.remember(remote_old, written=clock.now - 500)  # a replicated record already expired
    assert index.duplicate_of(fingerprint("text of article 100"), "x") is None


def test_memory_per_entry_is_small_and_stays_flat_past_the_bound(record: Any) -> None:
    index = StoryIndex(4000)
    for n in range(4000):
        index.remember(record(n))
    full = index.nbytes()
    for n in range(4000, 12_000):
        index.remember(record(n))
    assert full / 4000 < 2048  # bytes per entry: signature, 64 band keys, ids
    assert index.nbytes() <= full * 1.05


def test_the_worker_drops_copies_from_the_table_and_from_its_own_batch() -> None:
    from pipeline.models import RawArticle
    from pipeline.worker.story_clusters import assign_clusters, drop_duplicates

    body = " ".join(f"word{n}" for n in range(60))
    index = StoryIndex(100)
    first = [RawArticle(id="a", title="T", body=body), RawArticle(id="b", title="t.", body=body)]
    kept = drop_duplicates(first, index)  # "b" copies "a" within the batch
    assert [(article.id, fp is not None) for article, fp in kept] == [("a", True)]
    assert assign_clusters(kept, index) == ["a"]
    again = [
        RawArticle(id="a", title="T", body=body),  # a redelivery of itself: kept
        RawArticle(id="c", title="T", body=body.upper()),  # a copy of "a": dropped
        RawArticle(id="d", title="Short", body="two words"),  # too short to compare
        RawArticle(id="e", title="Short", body="two words"),
    ]
    kept = drop_duplicates(again, index)
    assert [article.id for article, _ in kept] == ["a", "d", "e"]
    assert assign_clusters(kept, index) == ["a", "d", "d"]  # same text, same story


def test_duplicate_entry_names_the_original_and_its_cluster(random_sig: Any) -> None:
    index = StoryIndex(100)
    index.remember(StoryRecord("a1", "c1", random_sig(), fingerprint="f" * 40))
    assert index.duplicate_entry("f" * 40, "b2") == ("a1", "c1")
    assert index.duplicate_entry("f" * 40, "a1") is None
    assert index.duplicate_of("f" * 40, "b2") == "a1"

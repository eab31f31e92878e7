"""The story table's pure parts (pipeline/sinks/story_table.py): request bodies, the batch
view read from the engine's answers, twin clusters folded into the earliest, documents,
expiry by day index. The store on the real engine: tests/integration/sinks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.enrich.dedup import StoryRecord, encode_signature
from pipeline.sinks.story_table import (
    MIN_SHARED_BANDS,
    SearchStoryStore,
    candidates_body,
    fold_twins,
    read_view,
    story_doc,
)

Sig = np.ndarray


def _hits(*sources: dict[str, Any], ids: list[str] | None = None) -> dict[str, Any]:
    return {
        "hits": {
            "hits": [
                {"_id": (ids or [str(n) for n in range(len(sources))])[n], "_source": s}
                for n, s in enumerate(sources)
            ]
        }
    }


def test_a_candidate_shares_at_least_two_bands_within_the_window(
    random_sig: Callable[[], Sig],
) -> None:
    body = candidates_body(random_sig(), cutoff_ms=1000)
    query = body["query"]["bool"]
    assert query["minimum_should_match"] == MIN_SHARED_BANDS == 2
    assert len(query["should"]) == 64 and query["filter"] == [{"range": {"t": {"gte": 1000}}}]
    assert body["collapse"] == {"field": "c"}


def test_the_view_holds_candidates_founding_times_and_copies_with_their_cluster(
    random_sig: Callable[[], Sig],
) -> None:
    a, b = random_sig(), random_sig()
    answers = [
        _hits({"c": "c1"}, {"c": "gone"}),  # "gone": its founder left the window
        _hits(),
        _hits({"c": "c1"}, ids=["a1"]),  # the one fingerprint given
    ]
    founders = _hits({"c": "c1", "s": encode_signature(a), "t": 5000})
    founders["hits"]["hits"][0].update({"_index": "s-20261203", "_seq_no": 7})
    view = read_view([a, b], ["fp", None], answers, founders)
    assert list(view.candidates[a.tobytes()]) == ["c1"]
    assert np.array_equal(view.candidates[a.tobytes()]["c1"], a)
    assert view.candidates[b.tobytes()] == {}
    assert view.founded == {"c1": ("s-20261203", 7)}  # its place in the order of writes
    assert view.duplicates == {"fp": [("a1", "c1")]}


def test_a_cluster_with_two_founders_offers_the_closest_and_its_earliest_place(
    random_sig: Callable[[], Sig], near: Callable[[Sig, float], Sig]
) -> None:
    first = random_sig()
    twin = near(first, 0.4)  # founded concurrently, then adopted "c1" (settle)
    article = near(twin, 0.1)
    founders = _hits(
        {"c": "c1", "s": encode_signature(twin)}, {"c": "c1", "s": encode_signature(first)}
    )
    founders["hits"]["hits"][0].update({"_index": "s-20261203", "_seq_no": 9})
    founders["hits"]["hits"][1].update({"_index": "s-20261203", "_seq_no": 2})
    view = read_view([article], [None], [_hits({"c": "c1"})], founders)
    assert np.array_equal(view.candidates[article.tobytes()]["c1"], twin)
    assert view.founded == {"c1": ("s-20261203", 2)}


def test_twin_clusters_fold_into_the_earliest_with_the_closest_founder(
    random_sig: Callable[[], Sig], near: Callable[[Sig, float], Sig]
) -> None:
    story = random_sig()
    first, second = near(story, 0.3), near(story, 0.3)  # one story founded twice
    other = random_sig()
    article = near(second, 0.1)  # closer to the later founder
    founded = {"late": ("s-20261203", 20), "early": ("s-20261203", 10), "other": ("s-1", 5)}
    folded = fold_twins(
        article, {"late": second, "early": first, "other": other}, founded.__getitem__
    )
    assert set(folded) == {"early", "other"}
    assert np.array_equal(folded["early"], second)  # the closest founder, under the earliest
    # ties go to the lowest cluster id, so every worker folds the same way
    same_time = fold_twins(article, {"b": second, "a": first}, lambda _: ("s", 1))
    assert list(same_time) == ["a"]
    # unrelated clusters are left alone
    assert fold_twins(article, {"x": other, "y": random_sig()}, lambda _: ("s", 1)).keys() == {
        "x",
        "y",
    }


def test_a_founder_document_carries_its_signature(random_sig: Callable[[], Sig]) -> None:
    sig = random_sig()
    founder = story_doc(StoryRecord("a1", "a1", sig, "fp", new_cluster=True), 2.5)
    member = story_doc(StoryRecord("a2", "a1", sig), 3.0)
    assert founder["n"] and founder["s"] == encode_signature(sig) and founder["f"] == "fp"
    assert founder["t"] == 2500 and len(founder["b"]) == 64
    assert not member["n"] and "s" not in member and "f" not in member


def test_a_redelivered_founder_that_finds_itself_still_founds(
    random_sig: Callable[[], Sig],
) -> None:
    store = SearchStoryStore(None, "s", window_seconds=86400)  # type: ignore[arg-type]
    sig = random_sig()
    store.remember(StoryRecord("a1", "a1", sig, new_cluster=False))  # joined its own cluster
    ((record, _),) = store._pending
    assert record.new_cluster
    assert story_doc(record, 1.0)["s"] == encode_signature(sig)
    store.discard()
    assert store._pending == []


def test_expired_day_indices() -> None:
    store = SearchStoryStore(
        None,  # type: ignore[arg-type]  # no I/O in this method
        "s",
        window_seconds=2 * 86400,
        clock=lambda: 1_700_000_000.0,  # 2023-11-14 22:13 UTC
    )
    names = ["s-20231110", "s-20231111", "s-20231112", "s-20231113", "s-20231114", "x-20200101"]
    assert store.expired_indices(names) == ["s-20231110", "s-20231111"]

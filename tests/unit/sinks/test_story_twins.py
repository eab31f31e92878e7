"""Who adopts whom when two workers found one story at once (pipeline/sinks/story_twins.py,
pure): the order of writes, the later twin moving to the earliest, never the reverse. The
batch following the move: tests/unit/worker/test_story_clusters.py. The race on the real engine:
tests/integration/sinks/test_story_table.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.enrich.dedup import encode_signature
from pipeline.sinks.story_twins import (
    UNWRITTEN,
    earliest_twin,
    founded_key,
    read_twins,
    twins_body,
)

Sig = np.ndarray
DAY = "s-20261203"


def test_the_later_twin_adopts_the_earlier_and_never_the_reverse(
    random_sig: Callable[[], Sig], near: Callable[[Sig, float], Sig]
) -> None:
    story = random_sig()
    early, late = near(story, 0.3), near(story, 0.3)
    founders = [("early", (DAY, 10), early), ("late", (DAY, 12), late)]
    # each side sees both (itself included): only the later one moves
    assert earliest_twin("late", late, (DAY, 12), founders) == "early"
    assert earliest_twin("early", early, (DAY, 10), founders) is None
    # the later one sees only the earlier (its own document not in the answer): it moves
    assert earliest_twin("late", late, (DAY, 12), founders[:1]) == "early"


def test_the_earliest_of_several_twins_wins_and_strangers_are_left_alone(
    random_sig: Callable[[], Sig], near: Callable[[Sig, float], Sig]
) -> None:
    story = random_sig()
    own = near(story, 0.3)
    founders = [
        ("second", (DAY, 7), near(story, 0.3)),
        ("first", (DAY, 5), near(story, 0.3)),
        ("stranger", (DAY, 1), random_sig()),  # earlier, shares bands by chance, not similar
    ]
    assert earliest_twin("own", own, (DAY, 9), founders) == "first"
    assert earliest_twin("own", own, (DAY, 9), founders[2:]) is None


def test_the_order_of_writes_runs_by_day_index_then_seq_no(
    random_sig: Callable[[], Sig], near: Callable[[Sig, float], Sig]
) -> None:
    story = random_sig()
    yesterday = ("yesterday", ("s-20261202", 900), near(story, 0.3))
    today = near(story, 0.3)
    # a lower seq_no in a later day index is still later: seq_nos count per index
    assert earliest_twin("today", today, ("s-20261203", 3), [yesterday]) == "yesterday"
    later = [("today", ("s-20261203", 3), today)]
    assert earliest_twin("yesterday", yesterday[2], yesterday[1], later) is None
    # a founder not written yet comes after every written one
    assert founded_key({"_index": DAY}) == (DAY, UNWRITTEN)
    assert (DAY, 10**12) < (DAY, UNWRITTEN)


def test_the_check_asks_for_founders_with_their_place_in_the_order(
    random_sig: Callable[[], Sig],
) -> None:
    sig = random_sig()
    body = twins_body(["a", "b", "c"], cutoff_ms=5, size=20, shared=2)
    assert body["seq_no_primary_term"] is True
    assert {"term": {"n": True}} in body["query"]["bool"]["filter"]
    assert body["query"]["bool"]["minimum_should_match"] == 2
    answer = {
        "hits": {
            "hits": [
                {"_index": DAY, "_seq_no": 4, "_source": {"c": "x", "s": encode_signature(sig)}},
                {"_index": DAY, "_seq_no": 5, "_source": {"c": "y"}},  # no signature: skipped
            ]
        }
    }
    ((cluster, key, found),) = read_twins(answer)
    assert (cluster, key) == ("x", (DAY, 4)) and np.array_equal(found, sig)

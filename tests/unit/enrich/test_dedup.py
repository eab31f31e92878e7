"""Exact duplicates, MinHash story signatures and cluster assignment."""

from __future__ import annotations

import numpy as np

from pipeline.enrich import dedup
from pipeline.enrich.stories import StoryIndex

STORY_A = """Kerry in Moscow to push Syria peace plan.
US Secretary of State John Kerry has arrived in Moscow, where a meeting with President
Vladimir Putin could decide the fate of Syrian peace talks. Kerry first held talks with
Foreign Minister Sergei Lavrov, but the success of his trip will depend on the rare
Kremlin meeting with Putin. Washington is relying on the Kremlin to drag Russian ally
Bashar al-Assad to the table for talks with rebel opponents on ending Syria's civil war."""

STORY_A_OTHER_SOURCE = """Kerry meets Putin in Moscow over Syria peace plan.
John Kerry, the US Secretary of State, arrived in Moscow on Tuesday for a meeting with
President Vladimir Putin that could decide the fate of the Syrian peace talks. Kerry
first held talks with Russian Foreign Minister Sergei Lavrov; the success of the trip
depends on the Kremlin meeting with Putin. Washington relies on the Kremlin to bring its
ally Bashar al-Assad to the table for talks with the rebels on ending the civil war."""

STORY_B = """Bank of England holds interest rates as inflation eases.
The Bank of England kept its benchmark interest rate unchanged on Thursday after
inflation slowed for a third month, and policymakers signalled that borrowing costs
could fall later in the year if wage growth continues to cool across the economy.
Sterling weakened against the dollar after the decision, while gilt yields fell."""


def test_fingerprint_ignores_case_punctuation_and_spacing() -> None:
    assert dedup.fingerprint("Hello, World!", "x") == dedup.fingerprint("hello   world", "X.")
    assert dedup.fingerprint("Hello world") != dedup.fingerprint("Hello there world")


def test_exact_duplicate_check() -> None:
    index = StoryIndex(100)
    fp = dedup.fingerprint(STORY_A)
    sig = dedup.signature(STORY_A)
    assert dedup.exact_duplicate_of(fp, index, "a1") is None
    dedup.assign_cluster(sig, index, "a1", fp=fp)  # remembered with its cluster
    assert dedup.exact_duplicate_of(fp, index, "a1") is None  # redelivery of itself
    assert dedup.exact_duplicate_of(fp, index, "a2") == "a1"
    assert dedup.exact_duplicate_of(dedup.fingerprint(STORY_B), index, "a2") is None


def test_signature_is_deterministic_and_encodable() -> None:
    sig = dedup.signature(STORY_A)
    assert sig.shape == (dedup.NUM_PERM,) and sig.dtype == np.uint32
    assert np.array_equal(sig, dedup.signature(STORY_A))
    assert np.array_equal(dedup.decode_signature(dedup.encode_signature(sig)), sig)


def test_band_keys_are_equal_exactly_where_both_rows_of_the_band_are() -> None:
    sig = dedup.signature(STORY_A)
    keys = dedup.band_keys(sig)
    assert keys.shape == (dedup.BANDS,) and keys.dtype == np.uint64
    assert len(set(keys.tolist())) == dedup.BANDS  # equal rows in two bands: other keys
    changed = sig.copy()
    changed[5] += 1  # row 1 of band 2
    other = dedup.band_keys(changed)
    assert [i for i in range(dedup.BANDS) if keys[i] != other[i]] == [2]


def test_similarity_orders_stories() -> None:
    a, a2, b = (dedup.signature(t) for t in (STORY_A, STORY_A_OTHER_SOURCE, STORY_B))
    assert dedup.jaccard_estimate(a, a2) > dedup.SIMILARITY_THRESHOLD
    assert dedup.jaccard_estimate(a, b) < 0.1


def test_same_story_two_sources_one_cluster_different_story_not() -> None:
    index = StoryIndex(100)
    c1 = dedup.assign_cluster(dedup.signature(STORY_A), index, "id-a")
    c2 = dedup.assign_cluster(dedup.signature(STORY_A_OTHER_SOURCE), index, "id-a2")
    c3 = dedup.assign_cluster(dedup.signature(STORY_B), index, "id-b")
    assert c1 == c2 == "id-a"
    assert c3 == "id-b"
    # a fresh index with the other order gives the same grouping
    index2 = StoryIndex(100)
    assert dedup.assign_cluster(dedup.signature(STORY_B), index2, "b") == "b"
    assert dedup.assign_cluster(dedup.signature(STORY_A_OTHER_SOURCE), index2, "x") == "x"
    assert dedup.assign_cluster(dedup.signature(STORY_A), index2, "y") == "x"


def test_empty_text_does_not_cluster_with_text() -> None:
    index = StoryIndex(100)
    assert dedup.assign_cluster(dedup.signature(""), index, "e") == "e"
    assert dedup.assign_cluster(dedup.signature(STORY_B), index, "b") == "b"

"""The story table in the search engine (pipeline/sinks/story_table.py) on the real node: near
duplicates written by one worker are found by another (no shared memory), exact duplicates
by fingerprint, distinct articles stay apart, and a batch's own articles meet before the
engine has refreshed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipeline.enrich.dedup import (
    assign_cluster,
    exact_duplicate_of,
    fingerprint,
    story_signature,
)
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.story_table import SearchStoryStore

pytestmark = pytest.mark.integration

STORY = (
    "The central bank raised interest rates by half a point on Thursday, its third rise this "
    "year, saying inflation had proved stickier than expected. Markets had priced in a "
    "smaller move and shares fell sharply after the announcement, while the currency "
    "climbed against the dollar. The governor said further rises could not be ruled out."
)
REWRITE = STORY.replace("on Thursday", "on Thursday afternoon").replace("sharply", "steeply")
OTHER = (
    "A storm brought heavy snow to the northern mountains overnight, closing roads and "
    "cutting power to thousands of homes. Emergency crews worked through the night and "
    "schools in three districts stayed shut as forecasters warned of more snow to come."
)


@pytest.fixture
async def backend(stack: Any) -> AsyncIterator[SearchBackend]:
    client = open_backend(stack.settings)
    yield client
    await client.close()


async def _store(backend: SearchBackend, prefix: str) -> SearchStoryStore:
    store = SearchStoryStore(backend, prefix, window_seconds=7 * 86400, grace_seconds=0.0)
    await store.install()
    return store


async def test_two_workers_share_clusters_through_the_engine(backend: SearchBackend) -> None:
    prefix = f"nwtest-stories-{uuid.uuid4().hex[:8]}"
    first, second = await _store(backend, prefix), await _store(backend, prefix)

    sig = story_signature("Rates rise", None, STORY)
    fp = fingerprint("Rates rise", STORY)
    await first.prefetch([sig], [fp])
    assert exact_duplicate_of(fp, first, "a1") is None
    founded = assign_cluster(sig, first, "cluster-a1", article_id="a1", fp=fp)
    assert founded == "cluster-a1"
    assert await first.flush() == 1
    await backend.refresh(f"{prefix}-*")

    # the other worker, which never held a1 in memory
    near = story_signature("Rates rise again", None, REWRITE)
    other = story_signature("Snow closes roads", None, OTHER)
    copy_fp = fingerprint("Rates rise", STORY)
    await second.prefetch([near, other, sig], [fingerprint("x", REWRITE), None, copy_fp])
    assert assign_cluster(near, second, "cluster-b1", article_id="b1") == "cluster-a1"
    assert assign_cluster(other, second, "cluster-b2", article_id="b2") == "cluster-b2"
    assert exact_duplicate_of(copy_fp, second, "b3") == "a1"
    assert exact_duplicate_of(copy_fp, second, "a1") is None  # its own redelivery
    assert second.unprefetched == 0
    assert await second.flush() == 2


async def test_a_batch_meets_its_own_articles_before_the_refresh(backend: SearchBackend) -> None:
    prefix = f"nwtest-stories-{uuid.uuid4().hex[:8]}"
    store = SearchStoryStore(backend, prefix, window_seconds=86400, grace_seconds=60.0)
    await store.install()
    sig = story_signature("Rates rise", None, STORY)
    near = story_signature("Rates rise again", None, REWRITE)
    await store.prefetch([sig, near], [None, None])
    assert assign_cluster(sig, store, "c1", article_id="a1") == "c1"
    assert assign_cluster(near, store, "c2", article_id="a2") == "c1"
    await store.flush()


def test_expired_day_indices() -> None:
    store = SearchStoryStore(
        None,  # type: ignore[arg-type]  # no I/O in this method
        "s",
        window_seconds=2 * 86400,
        clock=lambda: 1_700_000_000.0,  # 2023-11-14 22:13 UTC
    )
    names = ["s-20231110", "s-20231111", "s-20231112", "s-20231113", "s-20231114", "x-20200101"]
    assert store.expired_indices(names) == ["s-20231110", "s-20231111"]

"""The worker's story batch (pipeline/worker/story_clusters.py, the pure part): a batch
settled after the check for concurrently founded twins moves every article and exact copy
of a cluster that adopted its twin's. The story path on the real engine:
tests/integration/sinks/test_story_table.py."""

from __future__ import annotations

from pipeline.models import RawArticle, Source
from pipeline.worker.story_clusters import StoryBatch


def test_a_settled_batch_moves_its_members_and_copies_with_the_founder() -> None:
    def article(n: str) -> RawArticle:
        return RawArticle(id=n, title=n, body="text", source=Source(name="s"))

    batch = StoryBatch(
        kept=[(article("a"), None), (article("b"), None), (article("c"), None)],
        clusters=["a", "a", "c"],  # b joined a in the batch, c founded its own
        copies=[(article("d"), "a", "a"), (article("e"), "c", "c")],
    )
    settled = batch.settled({"a": "early"})
    assert settled.clusters == ["early", "early", "c"]
    assert [c for _, _, c in settled.copies] == ["early", "c"]
    assert batch.settled({}) is batch

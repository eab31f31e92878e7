"""One story founded twice at once by two workers (issue 18): the order of founders and the
rules that make such twins one cluster (pure; :class:`~pipeline.sinks.story_table.
SearchStoryStore` asks the engine and writes).

Order. Every story-table day index has one primary shard, so its ``_seq_no`` totally orders
its writes; across day indices the earlier day comes first. A founder's place is its
:data:`FoundedKey` ``(day index, _seq_no)``: every worker compares two founders the same way.

The race, closed (:func:`earliest_twin`): a batch's story documents are written with the
bulk's ``refresh``, so once the flush returns they are searchable, and then every article
of the batch that founded a cluster asks for founders sharing its bands. Of two twins
written concurrently to one day index, the one written second (higher ``_seq_no``) was
refreshed after the other was indexed, so its check sees the other and it adopts the
earlier's cluster; the earlier never moves for a later one. Later articles of the story
fold twins into the earliest founder the same way (:func:`fold_twins`), so every path
converges on one cluster. Not covered (docs/architecture.md, "Story table"): twins on
either side of midnight UTC (two indices, neither refresh orders the other), and a lower
``_seq_no`` whose Lucene add is still in flight when the higher one's refresh runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipeline.enrich.dedup import (
    SIMILARITY_THRESHOLD,
    Signature,
    decode_signature,
    jaccard_estimate,
)

#: Where a founding document stands in the order of writes: (day index, ``_seq_no``).
FoundedKey = tuple[str, int]
#: The place of a founder not written yet (this batch's own): after every written one.
UNWRITTEN = 2**62


def founded_key(hit: Mapping[str, Any]) -> FoundedKey:
    """A search hit's place in the order of writes (the search asked for
    ``seq_no_primary_term``)."""
    return (str(hit.get("_index", "")), int(hit.get("_seq_no", UNWRITTEN)))


def fold_twins(
    sig: Signature,
    found: Mapping[str, Signature],
    founded: Callable[[str], FoundedKey],
    threshold: float = SIMILARITY_THRESHOLD,
) -> dict[str, Signature]:
    """One entry per story among the candidate clusters ``found`` (pure).

    Two clusters whose founders are themselves similar (estimated Jaccard >= ``threshold``)
    are one story founded twice: two workers took its first articles at the same moment
    (a pair the check after the write has not settled yet), or LSH missed the first. They
    are folded into the earliest founded (``founded``: its :data:`FoundedKey`; ties to the
    lowest cluster id), and the entry carries the folded founder's signature most similar
    to ``sig``, so an article close to either joins the earliest. Every worker folds the
    same way, and the check after the write moves the later founder to the same one."""
    if len(found) < 2:
        return dict(found)
    order = sorted(found, key=lambda c: (founded(c), c))
    heads: list[str] = []
    best: dict[str, tuple[float, Signature]] = {}
    for cluster in order:
        own = found[cluster]
        head = next(
            (h for h in heads if jaccard_estimate(found[h], own) >= threshold),
            None,
        )
        sim = jaccard_estimate(sig, own)
        if head is None:
            heads.append(cluster)
            best[cluster] = (sim, own)
        elif sim > best[head][0]:
            best[head] = (sim, own)
    return {head: best[head][1] for head in heads}


def earliest_twin(
    cluster: str,
    sig: Signature,
    key: FoundedKey,
    founders: Iterable[tuple[str, FoundedKey, Signature]],
    threshold: float = SIMILARITY_THRESHOLD,
) -> str | None:
    """The cluster a founder (``cluster``, its signature ``sig``, written at ``key``) must
    adopt, or None to keep its own (pure). ``founders``: (cluster, key, signature) of the
    founders sharing its bands, as the engine answered after the write. A founder written
    earlier whose signature is similar (the rule of :func:`fold_twins`) founded the same
    story concurrently: the earliest such one wins. A founder never moves for a later one,
    so two twins never swap."""
    earlier = [
        (other_key, other)
        for other, other_key, other_sig in founders
        if other != cluster and other_key < key and jaccard_estimate(sig, other_sig) >= threshold
    ]
    return min(earlier)[1] if earlier else None


def shared_bands_query(
    terms: Iterable[str], cutoff_ms: int, shared: int, *filters: dict[str, Any]
) -> dict[str, Any]:
    """Story documents of the window sharing at least ``shared`` of the band ``terms``
    (and matching ``filters``): each band a constant-score clause, so the score counts
    the bands shared."""
    return {
        "bool": {
            "filter": [{"range": {"t": {"gte": cutoff_ms}}}, *filters],
            "should": [{"constant_score": {"filter": {"term": {"b": t}}}} for t in terms],
            "minimum_should_match": shared,
        }
    }


def twins_body(terms: list[str], cutoff_ms: int, size: int, shared: int) -> dict[str, Any]:
    """The founders (with signature and place in the order of writes) sharing at least
    ``shared`` of the band ``terms`` in the window, the most bands first."""
    return {
        "size": size,
        "_source": ["c", "s"],
        "seq_no_primary_term": True,
        "track_total_hits": False,
        "query": shared_bands_query(terms, cutoff_ms, shared, {"term": {"n": True}}),
    }


def read_twins(answer: Mapping[str, Any]) -> list[tuple[str, FoundedKey, Signature]]:
    """(cluster, place, signature) of the founders in a :func:`twins_body` answer."""
    out = []
    for hit in answer.get("hits", {}).get("hits", []):
        source = hit.get("_source") or {}
        if source.get("s"):
            out.append((str(source["c"]), founded_key(hit), decode_signature(str(source["s"]))))
    return out


def moved(clusters: Iterable[str], moves: Mapping[str, str]) -> list[str]:
    """``clusters`` with every cluster that adopted its twin's replaced by the twin's."""
    return [moves.get(c, c) for c in clusters]


__all__ = [
    "UNWRITTEN",
    "FoundedKey",
    "earliest_twin",
    "fold_twins",
    "founded_key",
    "moved",
    "read_twins",
    "shared_bands_query",
    "twins_body",
]

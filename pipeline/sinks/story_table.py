"""The story table kept in the search engine, shared by every worker, so a worker's memory
does not grow with the world's volume (issue 18): one small document per article in
``<prefix>-YYYYMMDD`` indices, looked up once per batch.

Why not split an in-memory table by partition: articles are partitioned by id, and near
duplicates of a story have different ids, so they would land in different workers' shares
and never meet. A shared engine lets every worker see every article of the window.

Per article (:func:`story_doc`): ``c`` cluster id, ``n`` founded it, ``b`` its 64 LSH band
keys (keyword, 16 hex digits; not in ``_source``), ``f`` fingerprint, ``s`` signature
(base64, founders only: candidates are checked against founders), ``t`` time. A batch costs
two requests (:meth:`SearchStoryStore.prefetch`): one ``msearch`` with, per article, the
clusters of the members sharing most of its bands (at least ``MIN_SHARED_BANDS``; collapse
on ``c``) and, per fingerprint, the earliest articles having it; then one search for the
founders of those clusters. The synchronous :class:`~pipeline.enrich.dedup.StoryStore` calls
then answer from that view plus a small in-memory index of this worker's own writes of the
last ``grace`` seconds (not yet searchable: the indices refresh every second), with clusters
founded twice at once folded into the earliest (:func:`fold_twins`), and
:meth:`SearchStoryStore.flush` bulk-writes what the batch remembered. Expiry: searches
filter on ``t`` >= now - window, and :meth:`SearchStoryStore.expire` deletes the day indices
past the window.

Memory per worker: the batch's view and the grace index, bounded by batch size and write
rate, never by the window's volume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog

from pipeline.enrich.dedup import (
    SIMILARITY_THRESHOLD,
    Signature,
    StoryRecord,
    band_keys,
    decode_signature,
    encode_signature,
    jaccard_estimate,
)
from pipeline.enrich.stories import StoryIndex
from pipeline.errors import RetryableError, SearchBackendError
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)

#: Candidate clusters asked per article (the members sharing most bands first).
CLUSTERS_PER_ARTICLE = 20
#: Bands a stored article must share with the one looked up to be a candidate. With 64
#: bands of 2 rows, a pair at the similarity threshold (Jaccard 0.3) shares at least 2 with
#: p = 0.98, at 0.4 with p = 0.9998; a chance pair of unrelated articles (Jaccard ~0.05)
#: shares 1 band often (a common-word pair) but 2 rarely, and what the engine scores and
#: collapses per lookup grows with such chance matches times the window's volume.
MIN_SHARED_BANDS = 2
#: Seconds a worker's own writes are answered from memory (the engine refreshes every 1 s).
GRACE_SECONDS = 5.0
#: Own writes held for the grace period at most (a bound, whatever the write rate).
GRACE_CAPACITY = 20_000
#: Lookup failures that pass (a day index created a moment ago, a shard moving, a full
#: search queue): the batch is retried.
TRANSIENT = (
    "no_shard_available",
    "unavailable_shards",
    "es_rejected_execution",
    "rejected_execution",
    "node_not_connected",
)

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "_source": {"excludes": ["b"]},  # searched, never read back: ~1 KiB less per document
    "properties": {
        "c": {"type": "keyword"},
        "n": {"type": "boolean"},
        "b": {"type": "keyword", "doc_values": False},
        "f": {"type": "keyword", "doc_values": False},
        "s": {"type": "binary"},
        "t": {"type": "date", "format": "epoch_millis"},
    },
}


def band_terms(sig: Signature) -> list[str]:
    """The signature's band keys as the keyword terms stored in ``b``."""
    return [f"{int(key):016x}" for key in band_keys(sig)]


def day_index(prefix: str, when: float) -> str:
    """The index of the day (UTC) of ``when``: ``<prefix>-YYYYMMDD``."""
    return f"{prefix}-{datetime.fromtimestamp(when, UTC):%Y%m%d}"


def story_doc(record: StoryRecord, now: float) -> dict[str, Any]:
    """The document of one remembered article."""
    doc: dict[str, Any] = {
        "c": record.cluster_id,
        "n": record.new_cluster,
        "b": band_terms(record.signature),
        "t": int(now * 1000),
    }
    if record.fingerprint:
        doc["f"] = record.fingerprint
    if record.new_cluster:
        doc["s"] = encode_signature(record.signature)
    return doc


def candidates_body(
    sig: Signature, cutoff_ms: int, size: int = CLUSTERS_PER_ARTICLE
) -> dict[str, Any]:
    """The clusters with a member sharing a band with ``sig`` in the window, one hit per
    cluster (collapse on ``c``), the members sharing most bands first: each band is a
    constant-score clause, so the score counts shared bands and a chance one-band match of
    a big cluster does not crowd out the article's real original."""
    return {
        "size": size,
        "_source": ["c"],
        "track_total_hits": False,  # only the best hits are read: no counting
        "collapse": {"field": "c"},
        "query": {
            "bool": {
                "filter": [{"range": {"t": {"gte": cutoff_ms}}}],
                "should": [
                    {"constant_score": {"filter": {"term": {"b": term}}}}
                    for term in band_terms(sig)
                ],
                "minimum_should_match": MIN_SHARED_BANDS,
            }
        },
    }


def duplicates_body(fp: str, cutoff_ms: int) -> dict[str, Any]:
    """Up to two articles with fingerprint ``fp`` in the window (id and cluster), the
    earliest first."""
    return {
        "size": 2,
        "_source": ["c"],
        "track_total_hits": False,
        "sort": [{"t": "asc"}],
        "query": {"bool": {"filter": [{"term": {"f": fp}}, {"range": {"t": {"gte": cutoff_ms}}}]}},
    }


def founders_body(clusters: Iterable[str], cutoff_ms: int) -> dict[str, Any]:
    """The founding documents (with signatures and times) of ``clusters`` in the window."""
    wanted = sorted(set(clusters))
    return {
        "size": len(wanted),
        "_source": ["c", "s", "t"],
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"c": wanted}},
                    {"term": {"n": True}},
                    {"range": {"t": {"gte": cutoff_ms}}},
                ]
            }
        },
    }


@dataclass
class BatchView:
    """What the engine knew about one batch's articles when it was prefetched: per
    signature the candidate clusters with their founders' signatures, per fingerprint the
    (id, cluster) of the articles having it (earliest first), and when each candidate
    cluster was founded (epoch seconds)."""

    candidates: dict[bytes, dict[str, Signature]] = field(default_factory=dict)
    duplicates: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    founded: dict[str, float] = field(default_factory=dict)


def hit_clusters(answer: dict[str, Any]) -> list[str]:
    """The cluster ids of a candidates search's hits, best first."""
    return [str(h["_source"]["c"]) for h in answer.get("hits", {}).get("hits", [])]


def read_view(
    sigs: Sequence[Signature],
    fps: Sequence[str | None],
    answers: Sequence[dict[str, Any]],
    founders: dict[str, Any] | None,
) -> BatchView:
    """The batch's view from the answers (pure): ``answers`` are one candidates search per
    signature, then one duplicates search per fingerprint that is not None."""
    view = BatchView()
    signatures: dict[str, Signature] = {}
    for hit in (founders or {}).get("hits", {}).get("hits", []):
        source = hit.get("_source") or {}
        if source.get("s"):
            cluster = str(source["c"])
            signatures[cluster] = decode_signature(str(source["s"]))
            view.founded[cluster] = float(source.get("t") or 0) / 1000.0
    for sig, answer in zip(sigs, answers, strict=False):
        view.candidates[sig.tobytes()] = {
            c: signatures[c] for c in hit_clusters(answer) if c in signatures
        }
    rest = iter(answers[len(sigs) :])
    for fp in fps:
        if fp:
            hits = next(rest, {}).get("hits", {}).get("hits", [])
            view.duplicates.setdefault(fp, []).extend(
                (str(h["_id"]), str((h.get("_source") or {}).get("c") or h["_id"])) for h in hits
            )
    return view


def fold_twins(
    sig: Signature,
    found: Mapping[str, Signature],
    founded: Callable[[str], float],
    threshold: float = SIMILARITY_THRESHOLD,
) -> dict[str, Signature]:
    """One entry per story among the candidate clusters ``found`` (pure).

    Two clusters whose founders are themselves similar (estimated Jaccard >= ``threshold``)
    are one story founded twice: two workers took its first articles at the same moment,
    before either's write was searchable (or LSH missed the first). They are folded into
    the earliest founded (``founded``: epoch seconds; ties to the lowest cluster id), and
    the entry carries the folded founder's signature most similar to ``sig``, so an
    article close to either joins the earliest. Every worker folds the same way, so later
    articles of the story converge on one cluster whichever worker takes them."""
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


class SearchStoryStore:
    """The story table in the search engine (implements ``StoryStore`` after
    :meth:`prefetch`); ``remember`` queues, :meth:`flush` writes."""

    def __init__(
        self,
        backend: SearchBackend,
        prefix: str,
        window_seconds: float,
        *,
        grace_seconds: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.prefix = prefix
        self.window = window_seconds
        self.grace = grace_seconds
        self.clock = clock
        self._recent = StoryIndex(GRACE_CAPACITY, ttl_seconds=grace_seconds, clock=clock)
        self._recent_founded: dict[str, float] = {}  # insertion order = time order
        self._view = BatchView()
        self._pending: list[tuple[StoryRecord, float]] = []
        self.unprefetched = 0  # lookups of signatures no prefetch covered (a caller bug)

    def template(self) -> dict[str, Any]:
        """The index template of the day indices: strict mapping, one shard, one replica
        once a second node joins, refreshed every second (what bounds the race between
        two workers taking the same story, see :func:`fold_twins`)."""
        return {
            "index_patterns": [f"{self.prefix}-*"],
            "template": {
                "settings": {
                    "index": {
                        "number_of_shards": 1,
                        "auto_expand_replicas": "0-1",
                        "refresh_interval": "1s",
                    }
                },
                "mappings": MAPPINGS,
            },
        }

    async def install(self) -> None:
        """Put the index template (``setup`` does; the day indices are created by the first
        write of each day)."""
        await self.backend.put_index_template(self.prefix, self.template())

    def _cutoff_ms(self) -> int:
        return int((self.clock() - self.window) * 1000)

    async def prefetch(self, sigs: Sequence[Signature], fps: Sequence[str | None]) -> None:
        """Ask the engine about a batch's articles before they are clustered (one msearch,
        then one search for the candidates' founders)."""
        if not sigs:
            self._view = BatchView()
            return
        pattern = f"{self.prefix}-*"
        cutoff = self._cutoff_ms()
        bodies = [candidates_body(sig, cutoff) for sig in sigs]
        bodies += [duplicates_body(fp, cutoff) for fp in fps if fp]
        answers = await self.backend.msearch(pattern, bodies)
        failed = [str(a["error"]) for a in answers if a.get("error")]
        if failed and not all("index_not_found" in e for e in failed):
            if any(transient in e for e in failed for transient in TRANSIENT):
                raise RetryableError(f"story lookup failed: {failed[0][:300]}")
            raise SearchBackendError(f"story lookup failed: {failed[0][:300]}")
        clusters = {c for answer in answers[: len(sigs)] for c in hit_clusters(answer)}
        founders = (
            await self.backend.search(pattern, founders_body(clusters, cutoff))
            if clusters
            else None
        )
        self._view = read_view(sigs, fps, answers, founders)

    # -- StoryStore ----------------------------------------------------------------------

    def duplicate_entry(self, fp: str, article_id: str) -> tuple[str, str] | None:
        """The earliest other article with fingerprint ``fp`` and its cluster; None when
        there is none or ``article_id`` itself has it (a redelivery or a revision)."""
        seen = self._view.duplicates.get(fp, [])
        if any(other == article_id for other, _ in seen):
            return None
        recent = self._recent.duplicate_entry(fp, article_id)
        if seen:
            return seen[0]
        return recent

    def duplicate_of(self, fp: str, article_id: str) -> str | None:
        found = self.duplicate_entry(fp, article_id)
        return found[0] if found is not None else None

    def candidates(self, sig: Signature) -> dict[str, Signature]:
        found = self._view.candidates.get(np.asarray(sig).tobytes())
        if found is None:
            self.unprefetched += 1
            found = {}
        merged = {**found, **self._recent.candidates(sig)}
        return fold_twins(sig, merged, self._founded_at)

    def _founded_at(self, cluster: str) -> float:
        when = self._view.founded.get(cluster)
        if when is None:
            when = self._recent_founded.get(cluster, self.clock())
        return when

    def remember(self, record: StoryRecord) -> None:
        now = self.clock()
        if record.cluster_id == record.article_id and not record.new_cluster:
            # a redelivered founder found itself: it still founds its cluster (its
            # document is replaced, and must keep the signature later articles check)
            record = replace(record, new_cluster=True)
        self._recent.remember(record)
        if record.new_cluster:
            self._recent_founded[record.cluster_id] = now
            while self._recent_founded:
                oldest, when = next(iter(self._recent_founded.items()))
                if when >= now - self.grace and len(self._recent_founded) <= GRACE_CAPACITY:
                    break
                del self._recent_founded[oldest]
        self._pending.append((record, now))

    # -- writes and expiry -----------------------------------------------------------------

    async def flush(self) -> int:
        """Write what was remembered since the last flush (one bulk request); returns how
        many. What fails stays pending, so the next flush writes it again."""
        if not self._pending:
            return 0
        pending = list(self._pending)
        operations: list[dict[str, Any]] = []
        for record, when in pending:
            operations.append(
                {"index": {"_index": day_index(self.prefix, when), "_id": record.article_id}}
            )
            operations.append(story_doc(record, when))
        answer = await self.backend.bulk(operations)
        if answer.get("errors"):
            failed = [
                item for item in answer.get("items", []) if item.get("index", {}).get("error")
            ]
            if failed:
                raise SearchBackendError(f"story documents refused: {failed[0]['index']['error']}")
        del self._pending[: len(pending)]
        return len(pending)

    def discard(self) -> None:
        """Forget the writes not flushed yet (a batch handed back before its flush)."""
        self._pending.clear()

    def expired_indices(self, names: Iterable[str]) -> list[str]:
        """The day indices entirely older than the window (pure; :meth:`expire` drops
        them)."""
        oldest_kept = day_index(self.prefix, self.clock() - self.window)
        return sorted(n for n in names if n.startswith(f"{self.prefix}-") and n < oldest_kept)

    async def expire(self) -> list[str]:
        """Delete the day indices entirely older than the window; returns their names."""
        rows = await self.backend.index_stats(f"{self.prefix}-*")
        expired = self.expired_indices(str(row.get("index", "")) for row in rows)
        for name in expired:
            await self.backend.delete_index(name)
            log.info("story_table.index_expired", index=name)
        return expired


__all__ = [
    "MAPPINGS",
    "BatchView",
    "SearchStoryStore",
    "band_terms",
    "candidates_body",
    "day_index",
    "duplicates_body",
    "fold_twins",
    "founders_body",
    "hit_clusters",
    "read_view",
    "story_doc",
]

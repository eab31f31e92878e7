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
then answer from that view plus a small in-memory index of the batch's own articles (a
near duplicate later in the same batch), with clusters founded twice at once folded into
the earliest (:func:`~pipeline.sinks.story_twins.fold_twins`). :meth:`SearchStoryStore.flush`
bulk-writes what the batch remembered, refreshed (searchable once it returns), and
:meth:`SearchStoryStore.settle` closes the race of two workers founding one story at once
(one more msearch, for the batch's new founders only; :mod:`pipeline.sinks.story_twins`).
Expiry: searches filter on ``t`` >= now - window, and :meth:`SearchStoryStore.expire`
deletes the day indices past the window.

Memory per worker: the batch's view and its own articles, bounded by batch size, never by
the window's volume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog

from pipeline.enrich.dedup import (
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
from pipeline.sinks.story_twins import (
    UNWRITTEN,
    FoundedKey,
    earliest_twin,
    fold_twins,
    founded_key,
    read_twins,
    shared_bands_query,
    twins_body,
)

log = structlog.get_logger(__name__)

#: Candidate clusters asked per article (the members sharing most bands first).
CLUSTERS_PER_ARTICLE = 20
#: Bands a stored article must share with the one looked up to be a candidate. With 64
#: bands of 2 rows, a pair at the similarity threshold (Jaccard 0.3) shares at least 2 with
#: p = 0.98, at 0.4 with p = 0.9998; a chance pair of unrelated articles (Jaccard ~0.05)
#: shares 1 band often (a common-word pair) but 2 rarely, and what the engine scores and
#: collapses per lookup grows with such chance matches times the window's volume.
MIN_SHARED_BANDS = 2
#: Founding documents read per candidate cluster at most (the first, and twins founded
#: concurrently that adopted it).
FOUNDERS_PER_CLUSTER = 4
#: Seconds a batch's own writes are answered from memory at most (until its flush, which
#: makes them searchable).
GRACE_SECONDS = 5.0
#: Own writes held at most (a bound, whatever the batch size).
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
        "query": shared_bands_query(band_terms(sig), cutoff_ms, MIN_SHARED_BANDS),
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
    """The founding documents (with signatures and places in the order of writes) of
    ``clusters`` in the window (a cluster has more than one when a twin adopted it)."""
    wanted = sorted(set(clusters))
    return {
        "size": FOUNDERS_PER_CLUSTER * len(wanted),
        "_source": ["c", "s", "t"],
        "seq_no_primary_term": True,  # the founders' place in the order of writes
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


def _raise_failed(answers: Sequence[dict[str, Any]], what: str) -> None:
    """Raise when an msearch answer failed (no day index yet is no failure): retryable
    when the failure passes (:data:`TRANSIENT`)."""
    failed = [str(a["error"]) for a in answers if a.get("error")]
    if failed and not all("index_not_found" in e for e in failed):
        if any(transient in e for e in failed for transient in TRANSIENT):
            raise RetryableError(f"{what} failed: {failed[0][:300]}")
        raise SearchBackendError(f"{what} failed: {failed[0][:300]}")


@dataclass
class BatchView:
    """What the engine knew about one batch's articles when it was prefetched: per
    signature the candidate clusters with their founders' signatures, per fingerprint the
    (id, cluster) of the articles having it (earliest first), and where each candidate
    cluster's founding document stands in the order of writes (day index, ``_seq_no``)."""

    candidates: dict[bytes, dict[str, Signature]] = field(default_factory=dict)
    duplicates: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    founded: dict[str, FoundedKey] = field(default_factory=dict)


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
    signature, then one duplicates search per fingerprint that is not None. A cluster with
    several founders (a twin that adopted it, :meth:`SearchStoryStore.settle`) is offered to
    each article with the founder's signature most similar to it, and was founded at its
    earliest founder's place."""
    view = BatchView()
    signatures: dict[str, list[Signature]] = {}
    for hit in (founders or {}).get("hits", {}).get("hits", []):
        source = hit.get("_source") or {}
        if source.get("s"):
            cluster = str(source["c"])
            signatures.setdefault(cluster, []).append(decode_signature(str(source["s"])))
            key = founded_key(hit)
            view.founded[cluster] = min(view.founded.get(cluster, key), key)
    for sig, answer in zip(sigs, answers, strict=False):
        view.candidates[sig.tobytes()] = {
            c: max(signatures[c], key=lambda f: jaccard_estimate(sig, f))
            for c in hit_clusters(answer)
            if c in signatures
        }
    rest = iter(answers[len(sigs) :])
    for fp in fps:
        if fp:
            hits = next(rest, {}).get("hits", {}).get("hits", [])
            view.duplicates.setdefault(fp, []).extend(
                (str(h["_id"]), str((h.get("_source") or {}).get("c") or h["_id"])) for h in hits
            )
    return view


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
        self._recent_founded: dict[str, FoundedKey] = {}
        self._view = BatchView()
        self._pending: list[tuple[StoryRecord, float]] = []
        #: The last flush's documents with their place in the order of writes, and whether
        #: the flush created them (not a redelivery's rewrite): what :meth:`settle` checks.
        self._written: list[tuple[StoryRecord, float, FoundedKey, bool]] = []
        self.unprefetched = 0  # lookups of signatures no prefetch covered (a caller bug)

    def template(self) -> dict[str, Any]:
        """The index template of the day indices: strict mapping, one shard, one replica
        once a second node joins, refreshed every second (for other writers; the story
        path's own flush refreshes what it wrote, see :meth:`flush`)."""
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
        _raise_failed(answers, "story lookup")
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

    def _founded_at(self, cluster: str) -> FoundedKey:
        key = self._view.founded.get(cluster)
        if key is None:  # this batch's own, not written yet: after every written one
            key = self._recent_founded.get(cluster, ("~", UNWRITTEN))
        return key

    def remember(self, record: StoryRecord) -> None:
        now = self.clock()
        if record.cluster_id == record.article_id and not record.new_cluster:
            # a redelivered founder found itself: it still founds its cluster (its
            # document is replaced, and must keep the signature later articles check)
            record = replace(record, new_cluster=True)
        self._recent.remember(record)
        if record.new_cluster:
            order = UNWRITTEN + len(self._recent_founded)
            self._recent_founded[record.cluster_id] = (day_index(self.prefix, now), order)
        self._pending.append((record, now))

    def _forget_recent(self) -> None:
        """Drop the in-memory index of this batch's own writes: once flushed (and
        refreshed) they are the engine's to answer."""
        self._recent = StoryIndex(GRACE_CAPACITY, ttl_seconds=self.grace, clock=self.clock)
        self._recent_founded = {}

    # -- writes and expiry -----------------------------------------------------------------

    async def _write(self, pending: Sequence[tuple[StoryRecord, float]]) -> list[dict[str, Any]]:
        """One bulk request of story documents, refreshed before it answers (the story
        table's day indices only: the bulk holds nothing else); the answer's items."""
        operations: list[dict[str, Any]] = []
        for record, when in pending:
            operations.append(
                {"index": {"_index": day_index(self.prefix, when), "_id": record.article_id}}
            )
            operations.append(story_doc(record, when))
        answer = await self.backend.bulk(operations, refresh="true")
        items = [item.get("index", {}) for item in answer.get("items", [])]
        failed = [item for item in items if item.get("error")]
        if failed:
            raise SearchBackendError(f"story documents refused: {failed[0]['error']}")
        return items

    async def flush(self) -> int:
        """Write what was remembered since the last flush (one bulk request, refreshed:
        searchable by every later lookup once it returns); returns how many. What fails
        stays pending, so the next flush writes it again. :meth:`settle` then checks the
        founders it wrote."""
        if not self._pending:
            return 0
        pending = list(self._pending)
        items = await self._write(pending)
        self._written += [
            (record, when, founded_key(item), item.get("result") == "created")
            for (record, when), item in zip(pending, items, strict=False)
        ]
        del self._pending[: len(pending)]
        self._forget_recent()
        return len(pending)

    async def settle(self) -> dict[str, str]:
        """After a flush: did an article of it found a cluster while a twin was founded
        concurrently by another worker (neither saw the other's write)? One msearch for
        the founders sharing each new founder's bands; a founder with an earlier similar
        one adopts the earliest's cluster (:func:`~pipeline.sinks.story_twins.
        earliest_twin`), and its document and those of this flush's articles that joined
        it are rewritten. Returns {cluster left: cluster adopted}. A redelivery's rewrite
        of its founder is not checked (its cluster is published already)."""
        founders = [(r, key) for r, _, key, created in self._written if r.new_cluster and created]
        moves: dict[str, str] = {}
        if founders:
            bodies = [
                twins_body(band_terms(r.signature), self._cutoff_ms(), 20, MIN_SHARED_BANDS)
                for r, _ in founders
            ]
            answers = await self.backend.msearch(f"{self.prefix}-*", bodies)
            _raise_failed(answers, "story check")
            for (record, key), answer in zip(founders, answers, strict=False):
                winner = earliest_twin(record.cluster_id, record.signature, key, read_twins(answer))
                if winner is not None:
                    moves[record.cluster_id] = winner
        if moves:
            # the founder that moved stays a founder of the cluster it adopted (its
            # signature is what its own near duplicates are closest to); the articles
            # that had joined it become members of that cluster
            rewritten = [
                (replace(r, cluster_id=moves[r.cluster_id]), when)
                for r, when, _, _ in self._written
                if r.cluster_id in moves
            ]
            await self._write(rewritten)
            log.info("story_table.twin_adopted", moves=moves, documents=len(rewritten))
        self._written = []
        return moves

    def discard(self) -> None:
        """Forget the writes not flushed yet (a batch handed back before its flush)."""
        self._pending.clear()
        self._written = []
        self._forget_recent()

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
    "fold_twins",  # from story_twins, where it lives with the rule it shares
    "founders_body",
    "hit_clusters",
    "read_view",
    "story_doc",
]

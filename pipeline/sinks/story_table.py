"""The story table kept in the search engine, so a worker's memory does not grow with the
world's volume (issue 18): one small document per article in ``<prefix>-YYYYMMDD`` indices,
looked up per batch.

Why not split the in-memory table by partition: articles are partitioned by id, and near
duplicates of a story have different ids, so they would land in different workers' shares
and never meet. A shared engine lets every worker see every article of the window.

Per article (:func:`story_doc`): ``c`` cluster id, ``n`` founded it, ``b`` its 64 LSH band
keys (keyword, 16 hex digits), ``f`` fingerprint, ``s`` signature (base64, founders only:
candidates are checked against founders), ``t`` time. A batch costs two requests
(:meth:`SearchStoryStore.prefetch`): one ``msearch`` with, per article, the clusters of the
members sharing most of its bands (collapse on ``c``) and, per fingerprint, the ids having
it; then one search for the founders of those clusters. The synchronous
:class:`~pipeline.enrich.dedup.StoryStore` calls then answer from that view plus a small
in-memory index of this worker's own writes of the last ``grace`` seconds (not yet
searchable: the indices refresh every second), and :meth:`SearchStoryStore.flush`
bulk-writes what the batch remembered. Expiry: indices are per day; searches filter on
``t`` >= now - window, and :meth:`SearchStoryStore.expired_indices` names the whole
indices past the window (deleting them is not wired yet).

Memory per worker: the batch's view and the grace index, bounded by batch size and write
rate, never by the window's volume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
)
from pipeline.enrich.stories import StoryIndex
from pipeline.errors import SearchBackendError
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)

#: Candidate clusters asked per article (the most members sharing a band first).
CLUSTERS_PER_ARTICLE = 20
#: Seconds a worker's own writes are answered from memory (the engine refreshes every 1 s).
GRACE_SECONDS = 5.0
#: Own writes held for the grace period at most (a bound, whatever the write rate).
GRACE_CAPACITY = 20_000

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
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
        "collapse": {"field": "c"},
        "query": {
            "bool": {
                "filter": [{"range": {"t": {"gte": cutoff_ms}}}],
                "should": [
                    {"constant_score": {"filter": {"term": {"b": term}}}}
                    for term in band_terms(sig)
                ],
                "minimum_should_match": 1,
            }
        },
    }


def duplicates_body(fp: str, cutoff_ms: int) -> dict[str, Any]:
    """Up to two ids of articles with fingerprint ``fp`` in the window."""
    return {
        "size": 2,
        "_source": False,
        "query": {"bool": {"filter": [{"term": {"f": fp}}, {"range": {"t": {"gte": cutoff_ms}}}]}},
    }


def founders_body(clusters: Iterable[str], cutoff_ms: int) -> dict[str, Any]:
    """The founding documents (with signatures) of ``clusters`` still in the window."""
    wanted = sorted(set(clusters))
    return {
        "size": len(wanted),
        "_source": ["c", "s"],
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
    """What the engine knew about one batch's articles when it was prefetched."""

    candidates: dict[bytes, dict[str, Signature]] = field(default_factory=dict)
    duplicates: dict[str, list[str]] = field(default_factory=dict)


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
    signatures: dict[str, Signature] = {}
    for hit in (founders or {}).get("hits", {}).get("hits", []):
        source = hit.get("_source") or {}
        if source.get("s"):
            signatures[str(source["c"])] = decode_signature(str(source["s"]))
    view = BatchView()
    for sig, answer in zip(sigs, answers, strict=False):
        view.candidates[sig.tobytes()] = {
            c: signatures[c] for c in hit_clusters(answer) if c in signatures
        }
    rest = iter(answers[len(sigs) :])
    for fp in fps:
        if fp:
            hits = next(rest, {}).get("hits", {}).get("hits", [])
            view.duplicates.setdefault(fp, []).extend(str(h["_id"]) for h in hits)
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
        self.clock = clock
        self._recent = StoryIndex(GRACE_CAPACITY, ttl_seconds=grace_seconds, clock=clock)
        self._view = BatchView()
        self._pending: list[tuple[StoryRecord, float]] = []
        self.unprefetched = 0  # lookups of signatures no prefetch covered (a caller bug)

    async def install(self) -> None:
        """The index template of the day indices (strict mapping, one shard, one replica on
        a cluster): they are created by the first write of each day."""
        await self.backend.put_index_template(
            self.prefix,
            {
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
            },
        )

    def _cutoff_ms(self) -> int:
        return int((self.clock() - self.window) * 1000)

    async def prefetch(self, sigs: Sequence[Signature], fps: Sequence[str | None]) -> None:
        """Ask the engine about a batch's articles before they are clustered."""
        if not sigs:
            self._view = BatchView()
            return
        pattern = f"{self.prefix}-*"
        cutoff = self._cutoff_ms()
        bodies = [candidates_body(sig, cutoff) for sig in sigs]
        bodies += [duplicates_body(fp, cutoff) for fp in fps if fp]
        answers = await self.backend.msearch(pattern, bodies)
        failed = [a["error"] for a in answers if a.get("error")]
        if failed and not all("index_not_found" in str(e) for e in failed):
            raise SearchBackendError(f"story lookup failed: {failed[0]}")
        clusters = {c for answer in answers[: len(sigs)] for c in hit_clusters(answer)}
        founders = (
            await self.backend.search(pattern, founders_body(clusters, cutoff))
            if clusters
            else None
        )
        self._view = read_view(sigs, fps, answers, founders)

    # -- StoryStore ----------------------------------------------------------------------

    def duplicate_of(self, fp: str, article_id: str) -> str | None:
        for other in self._view.duplicates.get(fp, []):
            if other != article_id:
                return other
        return self._recent.duplicate_of(fp, article_id)

    def candidates(self, sig: Signature) -> dict[str, Signature]:
        found = self._view.candidates.get(np.asarray(sig).tobytes())
        if found is None:
            self.unprefetched += 1
            found = {}
        return {**found, **self._recent.candidates(sig)}

    def remember(self, record: StoryRecord) -> None:
        self._recent.remember(record)
        self._pending.append((record, self.clock()))

    # -- writes and expiry -----------------------------------------------------------------

    async def flush(self) -> int:
        """Write what was remembered since the last flush; returns how many."""
        if not self._pending:
            return 0
        operations: list[dict[str, Any]] = []
        for record, when in self._pending:
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
        count = len(self._pending)
        self._pending.clear()
        return count

    def expired_indices(self, names: Iterable[str]) -> list[str]:
        """The day indices entirely older than the window (pure; ``expire`` drops them)."""
        oldest_kept = day_index(self.prefix, self.clock() - self.window)
        return sorted(n for n in names if n.startswith(f"{self.prefix}-") and n < oldest_kept)


__all__ = [
    "MAPPINGS",
    "BatchView",
    "SearchStoryStore",
    "band_terms",
    "candidates_body",
    "day_index",
    "duplicates_body",
    "founders_body",
    "hit_clusters",
    "read_view",
    "story_doc",
]

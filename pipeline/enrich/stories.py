"""The story index: articles remembered in memory, bounded by an entry count, to drop
exact duplicates and cluster stories. Pure: no I/O. The worker's story table lives in the
search engine (:mod:`pipeline.sinks.story_table`), which keeps only its own writes of the
last seconds in one of these (not yet searchable there); ``newswire enrich`` and the
tests use it whole.

One *entry* per article given a cluster (:class:`~pipeline.enrich.dedup.StoryRecord`):
article id, cluster id, MinHash signature, fingerprint, write time. Entries live in at
most ``GENERATIONS`` generations of ``capacity // GENERATIONS`` entries, in write order.
A generation keeps its entries in flat numpy arrays and its lookups (LSH band key ->
entry, fingerprint -> entry) as sorted ``uint64`` arrays searched with
``np.searchsorted``, plus a small dict of the keys added since the last merge
(``MERGE_EVERY`` entries). About 1.5 KiB per entry.

Eviction is oldest-first and incremental: when the newest generation is full and
``GENERATIONS`` exist, the oldest is dropped whole (a few array frees, plus one dict
deletion per cluster it founded); a generation whose newest entry has left the window
(``ttl_seconds``) is dropped the same way. Nothing ever scans the whole index. Reads
ignore single entries past the window before their generation goes.

A cluster lives as long as the article that founded it: its signature is what
candidates are checked against. Band keys of later members point to the cluster; once
the founder is gone they are ignored, and a new article starts a new cluster (as the
key-value table did when the founder's signature key expired).
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import structlog

from pipeline.enrich.dedup import NUM_PERM, Signature, StoryRecord, band_keys

log = structlog.get_logger(__name__)

#: Generations of entries; the oldest is dropped whole, so the table holds between
#: (1 - 1/GENERATIONS) and 1 times its capacity once it is full.
GENERATIONS = 8
#: Entries whose lookup keys wait in a dict before they are merged into the sorted arrays.
MERGE_EVERY = 512
#: Rough CPython cost of a dict item with an int key (the recent-keys dicts, founders).
_DICT_ITEM_BYTES = 100

_NO_KEYS = np.empty(0, np.uint64)
_NO_REFS = np.empty(0, np.uint32)


def fingerprint_key(fp: str) -> int:
    """The first 64 bits of a hex fingerprint: the exact-duplicate lookup key (a false
    match needs a 64-bit collision among the live entries: ~1e-9 at 200,000)."""
    return int(fp[:16], 16)


class _KeyIndex:
    """``uint64`` keys -> entry positions: a sorted array pair plus a dict of recent keys.
    The first entry to add a key keeps it (within one generation).

    A lookup of many keys is one vectorised pass: a directory of the keys' top bits (about
    8 keys per bucket) gives each key its bucket in the sorted array, and the buckets are
    compared whole; a cache miss or two per key where a binary search takes ~20."""

    __slots__ = ("directory", "keys", "offsets", "recent", "refs", "shift")

    def __init__(self) -> None:
        self.keys = _NO_KEYS
        self.refs = _NO_REFS
        self.recent: dict[int, int] = {}
        self.directory: npt.NDArray[np.intp] | None = None
        self.shift = np.uint64(64)
        self.offsets = np.arange(0)

    def add(self, keys: list[int], ref: int) -> None:
        setdefault = self.recent.setdefault
        for key in keys:
            setdefault(key, ref)

    def find(self, keys: npt.NDArray[np.uint64], key_list: list[int]) -> list[int]:
        """Positions of the entries holding any of ``keys`` (``key_list``: the same keys as
        Python ints, for the dict)."""
        found: list[int] = []
        size = self.keys.size
        if self.directory is not None:
            bucket = (keys >> self.shift).astype(np.intp)
            low, high = self.directory[bucket], self.directory[bucket + 1]
            where = low[:, None] + self.offsets
            inside = where < high[:, None]
            np.minimum(where, size - 1, out=where)
            hit = (self.keys[where] == keys[:, None]) & inside
            if hit.any():
                found.extend(self.refs[where[hit]].tolist())
        elif size:
            pos = np.minimum(np.searchsorted(self.keys, keys), size - 1)
            hit = self.keys[pos] == keys
            if hit.any():
                found.extend(self.refs[pos[hit]].tolist())
        if self.recent:
            get = self.recent.get
            for key in key_list:
                ref = get(key)
                if ref is not None:
                    found.append(ref)
        return found

    def merge(self) -> None:
        """Move the recent keys into the sorted arrays (one O(n) insert, n = this
        generation's keys); keys the arrays already hold keep their first entry."""
        if not self.recent:
            return
        count = len(self.recent)
        new = np.fromiter(self.recent.keys(), np.uint64, count)
        refs = np.fromiter(self.recent.values(), np.uint32, count)
        self.recent = {}
        order = np.argsort(new, kind="stable")
        new, refs = new[order], refs[order]
        pos = np.searchsorted(self.keys, new)
        if self.keys.size:
            known = self.keys[np.minimum(pos, self.keys.size - 1)] == new
            if known.any():
                new, refs, pos = new[~known], refs[~known], pos[~known]
        self.keys = np.insert(self.keys, pos, new)
        self.refs = np.insert(self.refs, pos, refs)
        self._index()

    def _index(self) -> None:
        """The directory over the keys' top bits (none for a few hundred keys: a binary
        search is as quick)."""
        size = self.keys.size
        bits = min(24, (size // 8).bit_length() - 1)
        if bits < 6:
            self.directory = None
            return
        self.shift = np.uint64(64 - bits)
        counts = np.bincount((self.keys >> self.shift).astype(np.intp), minlength=1 << bits)
        directory = np.zeros((1 << bits) + 1, np.intp)
        np.cumsum(counts, out=directory[1:])
        self.directory = directory
        self.offsets = np.arange(int(counts.max()))

    def nbytes(self) -> int:
        directory = 0 if self.directory is None else self.directory.nbytes
        return self.keys.nbytes + self.refs.nbytes + directory + len(self.recent) * _DICT_ITEM_BYTES


class _Generation:
    """Up to ``size`` consecutive entries; entry ``seq`` is at position ``seq - first``."""

    __slots__ = (
        "bands",
        "clusters",
        "fingerprints",
        "first",
        "founded",
        "ids",
        "newest",
        "object_bytes",
        "signatures",
        "size",
        "unmerged",
        "written",
    )

    def __init__(self, first: int, size: int) -> None:
        self.first = first
        self.size = size
        self.ids: list[str] = []
        self.clusters: list[str] = []
        # Zeroed pages are mapped on first write: an unfilled generation costs what it holds.
        self.written = np.zeros(size, np.float64)
        self.signatures = np.zeros((size, NUM_PERM), np.uint32)
        self.bands = _KeyIndex()
        self.fingerprints = _KeyIndex()
        self.founded: list[int] = []  # positions of the entries that founded their cluster
        self.newest = -math.inf
        self.unmerged = 0
        self.object_bytes = 0

    @property
    def full(self) -> bool:
        return len(self.ids) >= self.size

    def merge(self) -> None:
        self.bands.merge()
        self.fingerprints.merge()
        self.unmerged = 0

    def nbytes(self) -> int:
        used = len(self.ids)
        return (
            used * (self.signatures.itemsize * NUM_PERM + self.written.itemsize + 16)
            + self.bands.nbytes()
            + self.fingerprints.nbytes()
            + self.object_bytes
        )


class StoryIndex:
    """Fingerprints and story clusters of at most ``capacity`` articles, oldest first out,
    and none older than ``ttl_seconds``. Implements :class:`pipeline.enrich.dedup.StoryStore`.
    """

    def __init__(
        self,
        capacity: int,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError("the story index needs room for at least one entry")
        self.generations = min(GENERATIONS, capacity)
        self.generation_size = capacity // self.generations
        self.capacity = self.generations * self.generation_size  # <= the capacity asked
        self.ttl = ttl_seconds
        self.clock = clock
        self._gens: deque[_Generation] = deque()
        self._founders: dict[str, int] = {}  # cluster id -> seq of its founding entry
        self._next = 0  # seq of the next entry
        self._size = 0
        #: Entries dropped so far, by reason ("bound": the capacity, "expired": the window).
        self.evicted: dict[str, int] = {"bound": 0, "expired": 0}

    # -- reads -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Entries held (expired ones included until their generation is dropped)."""
        return self._size

    @property
    def clusters(self) -> int:
        """Clusters whose founder is held."""
        return len(self._founders)

    def nbytes(self) -> int:
        """Estimated memory of the entries held (numpy arrays exactly, Python objects by
        their sizes, dict items at a flat rate)."""
        return sum(g.nbytes() for g in self._gens) + len(self._founders) * _DICT_ITEM_BYTES

    def _cutoff(self, now: float | None = None) -> float:
        if self.ttl is None:
            return -math.inf
        return (self.clock() if now is None else now) - self.ttl

    def _locate(self, seq: int) -> tuple[_Generation, int] | None:
        if not self._gens:
            return None
        index = (seq - self._gens[0].first) // self.generation_size
        if not 0 <= index < len(self._gens):
            return None
        gen = self._gens[index]
        pos = seq - gen.first
        return (gen, pos) if 0 <= pos < len(gen.ids) else None

    def duplicate_of(self, fp: str, article_id: str) -> str | None:
        """Another live article with fingerprint ``fp``; None when there is none or when
        ``article_id`` itself has it (a redelivery, a revision)."""
        found = self.duplicate_entry(fp, article_id)
        return found[0] if found is not None else None

    def duplicate_entry(self, fp: str, article_id: str) -> tuple[str, str] | None:
        """Like :meth:`duplicate_of`, with the story cluster of that other article: an
        exact copy is dropped before enrichment, but still counts among its story's
        sources (``(original id, cluster id)``)."""
        key = fingerprint_key(fp)
        keys = np.array([key], np.uint64)
        cutoff = self._cutoff()
        other: tuple[str, str] | None = None
        for gen in self._gens:
            for pos in gen.fingerprints.find(keys, [key]):
                if gen.written[pos] < cutoff:
                    continue
                if gen.ids[pos] == article_id:
                    return None
                other = other or (gen.ids[pos], gen.clusters[pos])
        return other

    def candidates(self, sig: Signature) -> dict[str, Signature]:
        """Live clusters with an entry sharing an LSH band with ``sig``, each with the
        signature of the (live) article that founded it."""
        keys = band_keys(sig)
        key_list = keys.tolist()
        cutoff = self._cutoff()
        found: dict[str, Signature] = {}
        dead: set[str] = set()
        for gen in self._gens:
            for pos in gen.bands.find(keys, key_list):
                if gen.written[pos] < cutoff:
                    continue
                cid = gen.clusters[pos]
                if cid in found or cid in dead:
                    continue
                founder = self._founder(cid, cutoff)
                if founder is None:
                    dead.add(cid)
                else:
                    found[cid] = founder
        return found

    def _founder(self, cid: str, cutoff: float) -> Signature | None:
        seq = self._founders.get(cid)
        where = None if seq is None else self._locate(seq)
        if where is None:
            return None
        gen, pos = where
        if gen.written[pos] < cutoff:
            return None
        founder: Signature = gen.signatures[pos]
        return founder

    # -- writes ------------------------------------------------------------------------

    def remember(self, record: StoryRecord, written: float | None = None) -> None:
        """Add an entry (written now, or at ``written``: a replicated record's time)."""
        now = self.clock()
        self.expire(now)
        gen = self._open_generation()
        pos = len(gen.ids)
        article_id = record.article_id
        cluster_id = article_id if record.cluster_id == article_id else record.cluster_id
        gen.ids.append(article_id)
        gen.clusters.append(cluster_id)
        gen.object_bytes += sys.getsizeof(article_id)
        if cluster_id is not article_id:
            gen.object_bytes += sys.getsizeof(cluster_id)
        at = now if written is None else written
        gen.written[pos] = at
        gen.newest = max(gen.newest, at)
        gen.signatures[pos] = record.signature
        gen.bands.add(band_keys(record.signature).tolist(), pos)
        if record.fingerprint:
            gen.fingerprints.add([fingerprint_key(record.fingerprint)], pos)
        if record.new_cluster:
            gen.founded.append(pos)
            self._founders[cluster_id] = gen.first + pos
        self._next += 1
        self._size += 1
        gen.unmerged += 1
        if gen.unmerged >= MERGE_EVERY or gen.full:
            gen.merge()

    def _open_generation(self) -> _Generation:
        if self._gens and not self._gens[-1].full:
            return self._gens[-1]
        while len(self._gens) >= self.generations:
            self._drop("bound")
        gen = _Generation(self._next, self.generation_size)
        self._gens.append(gen)
        return gen

    def expire(self, now: float | None = None) -> int:
        """Drop the oldest generations whose every entry left the window; O(1) when none
        did. Returns the entries dropped."""
        cutoff = self._cutoff(now)
        dropped = 0
        while self._gens and self._gens[0].ids and self._gens[0].newest < cutoff:
            dropped += self._drop("expired")
        return dropped

    def _drop(self, reason: str) -> int:
        gen = self._gens.popleft()
        for pos in gen.founded:
            cid = gen.clusters[pos]
            if self._founders.get(cid) == gen.first + pos:
                del self._founders[cid]
        count = len(gen.ids)
        self._size -= count
        self.evicted[reason] += count
        if not self._gens:  # the open generation itself: the next one starts after it
            self._next = gen.first + gen.size
        log.info(
            "stories.generation_dropped",
            reason=reason,
            entries=count,
            held=self._size,
            capacity=self.capacity,
        )
        return count


__all__ = [
    "GENERATIONS",
    "MERGE_EVERY",
    "StoryIndex",
    "fingerprint_key",
]

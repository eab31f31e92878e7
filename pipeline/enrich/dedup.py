"""Duplicates and story clusters: pure functions over text and a story store.

- Exact duplicates: :func:`fingerprint` of the normalised text (and the canonical URL,
  which is already the article id) -> drop before enrichment.
- Near duplicates and the same story from several sources: a MinHash :func:`signature`
  over content-word shingles, banded into LSH keys (:func:`band_keys`: 64 bands of 2
  rows, each band one 64-bit integer). The store that remembers articles is a
  :class:`StoryStore`: the bounded in-memory :class:`pipeline.enrich.stories.StoryIndex`
  (tests, the CLI), or the worker's :class:`pipeline.sinks.story_table.SearchStoryStore`,
  shared by every worker in the search engine. A candidate cluster (one sharing a band
  with the new article) is accepted only when the estimated Jaccard similarity with the
  signature of the article that founded it reaches the threshold.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

from pipeline.enrich.words import NEWS_STOP, stop_words, words

NUM_PERM = 128
BANDS = 64  # 64 bands x 2 rows: a candidate is found for Jaccard >= ~0.15 with p > 0.75
SIMILARITY_THRESHOLD = 0.3  # estimated Jaccard of content shingles for "same story"
MAX_TEXT_CHARS = 20_000  # the lead is what two versions of a story share most

#: A MinHash signature: ``NUM_PERM`` 32-bit values.
Signature = npt.NDArray[np.uint32]
#: The LSH band keys of a signature: ``BANDS`` 64-bit values.
BandKeys = npt.NDArray[np.uint64]

# One random 64-bit value per band, XORed into the band's two rows so that equal rows in
# different bands give different keys. The seed is fixed: band keys are stored in the
# story table and looked up by every worker, so every process and version must agree.
_BAND_SALTS: BandKeys = np.random.default_rng(20240602).integers(
    0, np.iinfo(np.uint64).max, size=BANDS, dtype=np.uint64, endpoint=True
)


def normalize_text(text: str) -> str:
    """NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(words(text))


def fingerprint(*parts: str | None) -> str:
    """Exact-duplicate key: hex SHA-256 (first 16 bytes) of the normalised text parts."""
    joined = "\n".join(normalize_text(p) for p in parts if p)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def shingles(text: str) -> set[str]:
    """Content words and adjacent content-word pairs of the normalised text."""
    stop = stop_words() | NEWS_STOP
    content = [w for w in normalize_text(text[:MAX_TEXT_CHARS]).split() if w not in stop]
    content = [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in content
    ]
    out = set(content)
    out.update(f"{a} {b}" for a, b in itertools.pairwise(content))
    return out


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    rng = np.random.RandomState(20240601)  # fixed: signatures must agree across processes
    a = rng.randint(1, 2**31 - 1, size=num_perm, dtype=np.int64).astype(np.uint64)
    b = rng.randint(0, 2**31 - 1, size=num_perm, dtype=np.int64).astype(np.uint64)
    return a, b


def _hash32(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little")


def signature(text: str, num_perm: int = NUM_PERM) -> Signature:
    """MinHash signature (``num_perm`` 32-bit values) of :func:`shingles` of ``text``.

    datasketch's "legacy" scheme, ``(a * h + b) mod (2**61 - 1)`` truncated to 32 bits,
    with our fixed permutations and hash: signatures stored by earlier versions stay
    comparable."""
    minhash = MinHash(
        num_perm=num_perm,
        hashfunc=_hash32,
        permutations=_permutations(num_perm),
        scheme="legacy",
    )
    minhash.update_batch([s.encode("utf-8") for s in shingles(text)])
    values: Signature = np.asarray(minhash.hashvalues, dtype=np.uint32)
    return values


def story_signature(title: str | None, summary: str | None, body: str | None) -> Signature:
    """The signature of an article's text fields."""
    return signature("\n".join(p for p in (title, summary, body) if p))


def jaccard_estimate(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Share of equal MinHash values: an unbiased estimate of the Jaccard similarity."""
    left, right = np.asarray(a), np.asarray(b)
    if not left.size or left.shape != right.shape:
        return 0.0
    return int(np.count_nonzero(left == right)) / left.size


def band_keys(sig: npt.ArrayLike) -> BandKeys:
    """The ``BANDS`` LSH band keys of a signature: each band's two 32-bit rows as one
    64-bit integer, XORed with a per-band salt (equal keys <=> equal rows in that band)."""
    values = np.ascontiguousarray(sig, dtype="<u4")
    if values.shape != (NUM_PERM,):
        raise ValueError(f"a signature has {NUM_PERM} values, not {values.shape}")
    return values.view("<u8").astype(np.uint64) ^ _BAND_SALTS


def encode_signature(sig: npt.ArrayLike) -> str:
    """Compact text form of a signature (base64 of little-endian 32-bit values)."""
    return base64.b64encode(np.asarray(sig, dtype="<u4").tobytes()).decode("ascii")


def decode_signature(text: str) -> Signature:
    """Inverse of :func:`encode_signature`."""
    return np.frombuffer(base64.b64decode(text), dtype="<u4").astype(np.uint32)


@dataclass(frozen=True, slots=True)
class StoryRecord:
    """What is remembered of one article: its id, the cluster it joined (or founded,
    ``new_cluster``), its signature, and its fingerprint when it had enough words to be
    checked for exact duplicates."""

    article_id: str
    cluster_id: str
    signature: Signature
    fingerprint: str | None = None
    new_cluster: bool = False


class StoryStore(Protocol):
    """Where :func:`assign_cluster` and :func:`exact_duplicate_of` look and remember."""

    def duplicate_entry(self, fp: str, article_id: str) -> tuple[str, str] | None:
        """Like :meth:`duplicate_of`, with that article's story cluster."""
        ...

    def duplicate_of(self, fp: str, article_id: str) -> str | None:
        """Another live article with fingerprint ``fp`` (None if none, or if
        ``article_id`` itself has it: a redelivery or revision is no duplicate)."""
        ...

    def candidates(self, sig: Signature) -> Mapping[str, Signature]:
        """Live clusters sharing a band with ``sig``, with their founders' signatures."""
        ...

    def remember(self, record: StoryRecord) -> None:
        """Remember an article (and publish it, for a replicated store)."""
        ...


def assign_cluster(
    sig: Signature,
    index: StoryStore,
    new_cluster_id: str,
    *,
    article_id: str | None = None,
    fp: str | None = None,
    threshold: float = SIMILARITY_THRESHOLD,
) -> str:
    """The cluster of the most similar known story, or ``new_cluster_id``; the article
    (``article_id``, default ``new_cluster_id``, with its fingerprint ``fp``) is
    remembered in ``index`` either way.

    Candidates come from shared LSH bands; each candidate cluster is checked against the
    signature of the article that founded it and accepted at estimated Jaccard >=
    ``threshold``.
    """
    best_id, best_sim = None, -1.0
    for cid, founder in index.candidates(sig).items():
        sim = jaccard_estimate(sig, founder)
        if sim >= threshold and sim > best_sim:
            best_id, best_sim = cid, sim
    cluster_id = best_id if best_id is not None else new_cluster_id
    index.remember(
        StoryRecord(
            article_id=article_id if article_id is not None else new_cluster_id,
            cluster_id=cluster_id,
            signature=sig,
            fingerprint=fp,
            new_cluster=best_id is None,
        )
    )
    return cluster_id


def exact_duplicate_of(fp: str, index: StoryStore, article_id: str) -> str | None:
    """The id of an earlier article with the same fingerprint, if ``index`` remembers one
    (the article itself is remembered with its cluster, by :func:`assign_cluster`)."""
    return index.duplicate_of(fp, article_id)

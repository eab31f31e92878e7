"""Duplicates and story clusters: pure functions over text and a key-value index.

- Exact duplicates: :func:`fingerprint` of the normalised text (and the canonical URL,
  which is already the article id) -> drop before enrichment.
- Near duplicates and the same story from several sources: a MinHash :func:`signature`
  over content-word shingles, banded into LSH keys (:func:`band_keys`). The index that
  remembers signatures is any ``MutableMapping[str, str]`` (a dict in tests and the CLI,
  the replicated Kafka table :class:`pipeline.kafka.compacted.ReplicatedTable` in the
  worker, which every worker holds whole): band keys ``"b:<band>:<hash>" -> cluster_id`` and one
  representative signature per cluster under ``"s:<cluster_id>"``. A candidate from a
  shared band is accepted only when its estimated Jaccard similarity reaches the threshold.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import unicodedata
from collections.abc import MutableMapping, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

from pipeline.enrich.words import NEWS_STOP, stop_words, words

NUM_PERM = 128
BANDS = 64  # 64 bands x 2 rows: a candidate is found for Jaccard >= ~0.15 with p > 0.75
SIMILARITY_THRESHOLD = 0.3  # estimated Jaccard of content shingles for "same story"
MAX_TEXT_CHARS = 20_000  # the lead is what two versions of a story share most
BAND_PREFIX = "b:"
SIGNATURE_PREFIX = "s:"
EXACT_PREFIX = "x:"


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


def signature(text: str, num_perm: int = NUM_PERM) -> tuple[int, ...]:
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
    return tuple(int(v) for v in minhash.hashvalues)


def story_signature(title: str | None, summary: str | None, body: str | None) -> tuple[int, ...]:
    """The signature of an article's text fields."""
    return signature("\n".join(p for p in (title, summary, body) if p))


def jaccard_estimate(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of equal MinHash values: an unbiased estimate of the Jaccard similarity."""
    if not a or len(a) != len(b):
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def band_keys(sig: Sequence[int], bands: int = BANDS) -> list[str]:
    """LSH band keys of a signature: ``"b:<band>:<hash of the band's rows>"``."""
    rows = len(sig) // bands
    keys = []
    for band in range(bands):
        chunk = ",".join(str(v) for v in sig[band * rows : (band + 1) * rows])
        digest = hashlib.blake2b(chunk.encode("ascii"), digest_size=8).hexdigest()
        keys.append(f"{BAND_PREFIX}{band}:{digest}")
    return keys


def encode_signature(sig: Sequence[int]) -> str:
    """Compact text form of a signature (for string-valued tables)."""
    raw = b"".join(int(v).to_bytes(4, "little") for v in sig)
    return base64.b64encode(raw).decode("ascii")


def decode_signature(text: str) -> tuple[int, ...]:
    """Inverse of :func:`encode_signature`."""
    raw = base64.b64decode(text)
    return tuple(int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4))


def assign_cluster(
    sig: Sequence[int],
    index: MutableMapping[str, str],
    new_cluster_id: str,
    threshold: float = SIMILARITY_THRESHOLD,
    bands: int = BANDS,
) -> str:
    """The cluster of the most similar known story, or ``new_cluster_id``; updates ``index``.

    Candidates come from shared LSH bands; each candidate cluster is checked against its
    stored representative signature and accepted at estimated Jaccard >= ``threshold``.
    """
    keys = band_keys(sig, bands)
    candidates: dict[str, int] = {}
    for key in keys:
        cid = index.get(key)
        if cid is not None:
            candidates[cid] = candidates.get(cid, 0) + 1
    best_id, best_sim = None, -1.0
    for cid in candidates:
        stored = index.get(SIGNATURE_PREFIX + cid)
        if stored is None:
            continue
        sim = jaccard_estimate(sig, decode_signature(stored))
        if sim >= threshold and sim > best_sim:
            best_id, best_sim = cid, sim
    cluster_id = best_id if best_id is not None else new_cluster_id
    if best_id is None:
        index[SIGNATURE_PREFIX + cluster_id] = encode_signature(sig)
    for key in keys:
        if key not in index:
            index[key] = cluster_id
    return cluster_id


def check_exact_duplicate(fp: str, index: MutableMapping[str, str], article_id: str) -> str | None:
    """The id of an earlier article with the same fingerprint (and remember this one)."""
    key = EXACT_PREFIX + fp
    seen = index.get(key)
    if seen is not None and seen != article_id:
        return seen
    index[key] = article_id
    return None

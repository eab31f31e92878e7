"""What a feed has already published, in a few bytes per item: new items and revisions.

Each item the feed can still show is remembered as an 8-byte fingerprint of its id plus
a 4-byte hash of its title, summary and body (12 bytes, packed into one ``bytes``; oldest
first). An item whose fingerprint is unknown is new; a known one whose content hash
changed is a *revision* and is published once more (same id, newer ``fetched_at``, which
the sink's external versioning keeps as the newest); an unchanged one never is.

The memory is bounded by ``cap`` items (``poll_seen_items``), raised for a document that
shows more items than that to as many as it shows, up to :data:`MAX_ITEMS` (100 items,
1,200 bytes): every item a feed can still show is remembered, dated or not. The items of
the current document come first, then those seen before, most recent first. Only when a
document alone has more than the bound are the newest kept (by publication date), and
``floor`` becomes the newest publication time of those dropped: an unknown item dated at
or before the floor is an old one forgotten for room, not a new one. (An undated item of
a document of more than :data:`MAX_ITEMS` items that falls outside the bound cannot be
told apart from a new one; it is published again when the document changes.)

Content hash 0 means "not known" (state written before revisions existed): such an item
takes the hash it has now without being published again, so an upgrade is no storm.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.models import RawArticle

ITEM = struct.Struct(">QI")  # fingerprint, content hash
ITEM_BYTES = ITEM.size  # 12
#: Most items remembered for one feed, however many its document shows: 1,200 bytes in
#: memory, a state record of ~2 KB at most (base64 and the other fields).
MAX_ITEMS = 100


def fingerprint(article_id: str) -> int:
    """8 bytes of BLAKE2b over an article id (hashed again: not every id is a digest)."""
    return int.from_bytes(hashlib.blake2b(article_id.encode("utf-8"), digest_size=8).digest())


def content_hash(article: RawArticle) -> int:
    """4 bytes over title, summary and body; never 0 (0 is "not known")."""
    text = "\x00".join((article.title or "", article.summary or "", article.body or ""))
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest())
    return value or 1


def unpack(seen: bytes) -> dict[int, int]:
    """Fingerprint -> content hash, oldest first."""
    usable = len(seen) - len(seen) % ITEM_BYTES
    return dict(ITEM.iter_unpack(seen[:usable]))


def pack(items: Iterable[tuple[int, int]]) -> bytes:
    return b"".join(ITEM.pack(fp, ch) for fp, ch in items)


def from_ids(ids: Iterable[str]) -> bytes:
    """The packed form of version-1 state (a list of ids, no content hashes)."""
    return pack((fingerprint(i), 0) for i in dict.fromkeys(ids))


@dataclass(slots=True)
class Selection:
    """What to publish from one document, and what to remember after it."""

    publish: list[RawArticle]
    new: int
    revisions: int
    seen: bytes
    floor: float | None


def _stamp(article: RawArticle) -> float | None:
    return article.published_at.timestamp() if article.published_at is not None else None


def select(articles: Sequence[RawArticle], seen: bytes, floor: float | None, cap: int) -> Selection:
    """New items and revisions of ``articles`` against the packed ``seen`` memory."""
    known = unpack(seen)
    current: dict[int, tuple[int, RawArticle]] = {}
    publish: list[RawArticle] = []
    new = revisions = 0
    for article in articles:
        fp = fingerprint(article.id)
        if fp in current:
            continue  # the same id twice in one document: its first occurrence counts
        ch = content_hash(article)
        current[fp] = (ch, article)
        before = known.get(fp)
        if before is None:
            stamp = _stamp(article)
            if floor is not None and stamp is not None and stamp <= floor:
                continue  # an old item forgotten for room, not a new one
            publish.append(article)
            new += 1
        elif before not in (0, ch):
            publish.append(article)
            revisions += 1
    # The whole document is remembered when it fits the hard bound: a long feed's
    # undated items past ``cap`` would otherwise look new whenever the document changes.
    cap = max(1, cap, min(len(current), MAX_ITEMS))
    ranked = list(current.items())
    if len(ranked) > cap:
        # Newest first by date; undated items keep their place in the document's order
        # (feeds list newest first) by counting as newer than every dated one.
        order = sorted(
            range(len(ranked)),
            key=lambda i: (-(_stamp(ranked[i][1][1]) or float("inf")), i),
        )
        kept = {ranked[i][0] for i in order[:cap]}
        dropped = [_stamp(ranked[i][1][1]) for i in order[cap:]]
        stamps = [s for s in dropped if s is not None]
        if stamps:
            floor = max(floor or stamps[0], *stamps)
        ranked = [item for item in ranked if item[0] in kept]
    room = cap - len(ranked)
    older = [(fp, ch) for fp, ch in known.items() if fp not in current]
    keep_older = older[max(0, len(older) - room) :] if room > 0 else []
    # Oldest first: earlier remembered items, then the document's (its last entry first).
    remembered = [*keep_older, *((fp, ch) for fp, (ch, _a) in reversed(ranked))]
    return Selection(publish, new, revisions, pack(remembered), floor)


__all__ = [
    "ITEM_BYTES",
    "MAX_ITEMS",
    "Selection",
    "content_hash",
    "fingerprint",
    "from_ids",
    "pack",
    "select",
    "unpack",
]

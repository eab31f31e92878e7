"""What the poller remembers about a feed, and the store interface it is kept behind.

State of a feed (ETag, Last-Modified, body hash, schedule, failures, ids published) is one
JSON record keyed by the feed key and placed in partition ``partition_for(key)``: the same
partition number as the feed's partition of the ``newswire.feeds`` assignment topic, so a
poller that is assigned partitions P reads exactly the state partitions P. The Kafka
stores are in :mod:`pipeline.sources.coordination`; here is the in-memory one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Protocol


def partition_for(key: str, partitions: int) -> int:
    """The partition (of both poller topics) a feed key belongs to."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % partitions


@dataclass(slots=True)
class FeedState:
    """What the poller remembers about one feed."""

    key: str
    url: str  # the configured URL
    fetch_url: str | None = None  # after a permanent redirect
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    interval: float | None = None  # current adaptive interval, seconds
    next_poll_at: float = 0.0  # unix time
    last_poll_at: float | None = None
    last_change_at: float | None = None
    last_status: int | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    new_items: int = 0  # in the last poll
    total_items: int = 0
    seen_ids: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        # Every field is a JSON scalar or a list of strings: no deep copy (asdict) needed.
        values = {name: getattr(self, name) for name in _STATE_FIELDS}
        return json.dumps(values, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> FeedState:
        raw = json.loads(data)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def remember(self, ids: Iterable[str], limit: int) -> None:
        """Add published ids, keeping the most recent ``limit``."""
        seen = dict.fromkeys(self.seen_ids)
        for ident in ids:
            seen.pop(ident, None)
            seen[ident] = None
        self.seen_ids = list(seen)[-limit:]

    def restore(self, snapshot: bytes) -> None:
        """Go back to what ``to_json()`` returned as ``snapshot``."""
        old = FeedState.from_json(snapshot)
        for name in _STATE_FIELDS:
            setattr(self, name, getattr(old, name))


_STATE_FIELDS = tuple(f.name for f in fields(FeedState))


class StateStore(Protocol):
    """Where poller state lives (Kafka in production, memory in unit tests)."""

    async def load(self, partitions: Iterable[int] | None = None) -> dict[str, FeedState]: ...

    async def save(self, state: FeedState) -> None: ...

    async def forget(self, keys: Iterable[str]) -> None:
        """Delete the state of ``keys`` (a tombstone in the compacted topic)."""
        ...

    async def close(self) -> None: ...


def removed_feeds(stored: Iterable[str], listed: Iterable[str]) -> list[str]:
    """Keys with stored state whose feed is no longer in the list (disabled feeds are
    still listed, and keep their state)."""
    present = set(listed)
    return sorted(key for key in stored if key not in present)


class MemoryStateStore:
    """State in a dict (unit tests, dry runs)."""

    def __init__(self, partitions: int = 16) -> None:
        self.states: dict[str, FeedState] = {}
        self.partitions = partitions
        self.saves = 0

    async def load(self, partitions: Iterable[int] | None = None) -> dict[str, FeedState]:
        wanted = None if partitions is None else set(partitions)
        return {
            k: FeedState.from_json(v.to_json())
            for k, v in self.states.items()
            if wanted is None or partition_for(k, self.partitions) in wanted
        }

    async def save(self, state: FeedState) -> None:
        self.states[state.key] = FeedState.from_json(state.to_json())
        self.saves += 1

    async def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.states.pop(key, None)

    async def close(self) -> None:
        return None


__all__ = ["FeedState", "MemoryStateStore", "StateStore", "partition_for"]

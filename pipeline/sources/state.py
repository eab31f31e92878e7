"""What the poller remembers about a feed, and the store interface it is kept behind.

State of a feed is one small JSON record keyed by the feed key and placed in partition
``partition_for(key)``: the same partition number as the feed's partition of the
``newswire.feeds`` assignment topic, so a poller that is assigned partitions P reads
exactly the state partitions P. The Kafka stores are in
:mod:`pipeline.sources.coordination`; here is the record and the in-memory store.

Record contract (version 2, ``"v": 2``; docs/architecture.md): fields at their default
(None, 0) are left out; ``seen`` is the base64 of the packed item memory of
:mod:`pipeline.sources.seen` (12 bytes per item, at most ``poll_seen_items``), so a record
stays under ~2 KB however long the feed has been polled. Version 1 records (no ``v``, a
``seen_ids`` list of ids) are still read: their ids become fingerprints with unknown
content hashes (a rolling upgrade publishes nothing twice).

A poll that changed nothing but the schedule and the last poll's description
(:data:`SCHEDULE_FIELDS`: a 304, or a body with nothing new) is not written
(:meth:`FeedState.needs_write`): after a restart such a feed is polled somewhat early once
(one conditional GET), and ``feeds status`` shows the last *written* poll for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from pipeline.sources.seen import from_ids

RECORD_VERSION = 2
#: Longest error message kept in the record (the log has the whole of it).
MAX_ERROR_CHARS = 160
#: Fields that only schedule the next poll or describe the last one: a change of these
#: alone is not written (they ride along with the next durable change).
SCHEDULE_FIELDS = frozenset(
    {"next_poll_at", "last_poll_at", "interval", "last_outcome", "last_status", "new_items",
     "items_per_day"}
)  # fmt: skip


#: A state's record field values (:meth:`FeedState.snapshot`).
Snapshot = tuple[Any, ...]


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
    last_change_at: float | None = None  # last poll with a new item or revision
    last_status: int | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    failing_since: float | None = None  # first failure of the current run of failures
    disabled: str | None = None  # why the poller gave up on the feed (probed slowly)
    new_items: int = 0  # in the last poll
    total_items: int = 0
    revisions: int = 0  # items published again because their content changed
    items_per_day: float = 0.0  # moving average of new items per day
    seen: bytes = b""  # packed item memory (pipeline.sources.seen)
    floor: float | None = None  # see pipeline.sources.seen
    #: Digest of the durable fields as last written or loaded (not part of the record).
    written: int = field(default=0, compare=False, repr=False)

    def _values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"v": RECORD_VERSION}
        for name in _RECORD_FIELDS:
            value = getattr(self, name)
            if value is None or (value == 0 and name not in ("key", "url")) or value == b"":
                continue
            if name == "seen":
                value = base64.b64encode(value).decode("ascii")
            elif name == "last_error":
                value = value[:MAX_ERROR_CHARS]
            values[name] = value
        return values

    def to_json(self) -> bytes:
        return json.dumps(self._values(), separators=(",", ":")).encode("utf-8")

    def durable_digest(self) -> int:
        """A digest of everything but the schedule fields: a hash of their values, no
        encoding (it runs at every poll, a 304 included)."""
        return hash(tuple([getattr(self, name) for name in _DURABLE_FIELDS])) or 1

    def needs_write(self) -> bool:
        """Whether more than the schedule changed since the last write or load."""
        return self.durable_digest() != self.written

    def mark_written(self) -> None:
        self.written = self.durable_digest()

    @classmethod
    def from_json(cls, data: bytes) -> FeedState:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a state record is a JSON object")
        version = raw.pop("v", 1)
        if version == 1 and "seen_ids" in raw:
            raw["seen"] = from_ids(raw.pop("seen_ids") or [])
        elif isinstance(raw.get("seen"), str):
            try:
                raw["seen"] = base64.b64decode(raw["seen"], validate=True)
            except binascii.Error as exc:
                raise ValueError(f"seen is not base64: {exc}") from exc
        state = cls(**{k: v for k, v in raw.items() if k in _RECORD_FIELD_SET})
        state.mark_written()
        return state

    def snapshot(self) -> Snapshot:
        """The record's field values, for :meth:`restore` (no encoding: every field is
        immutable, so the tuple is a complete copy)."""
        return tuple([getattr(self, name) for name in _RECORD_FIELDS])

    def restore(self, snapshot: bytes | Snapshot) -> None:
        """Go back to a :meth:`snapshot` (or to what ``to_json()`` returned)."""
        if isinstance(snapshot, bytes):
            old = FeedState.from_json(snapshot)
            snapshot = old.snapshot()
        for name, value in zip(_RECORD_FIELDS, snapshot, strict=True):
            setattr(self, name, value)


_RECORD_FIELDS = tuple(f.name for f in fields(FeedState) if f.name != "written")
RECORD_FIELDS = _RECORD_FIELDS  # the fields a state record carries
_DURABLE_FIELDS = tuple(f for f in _RECORD_FIELDS if f not in SCHEDULE_FIELDS)
_RECORD_FIELD_SET = frozenset(_RECORD_FIELDS)


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


__all__ = [
    "RECORD_FIELDS",
    "RECORD_VERSION",
    "SCHEDULE_FIELDS",
    "FeedState",
    "MemoryStateStore",
    "Snapshot",
    "StateStore",
    "partition_for",
    "removed_feeds",
]

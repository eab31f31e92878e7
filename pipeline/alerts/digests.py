"""Digests that survive a restart: which matches a ``--digest`` alert's next delivery holds.

A digest is defined by offsets of the alerts topic, not by what one process held in
memory. The delivery consumer commits an offset only once every record before it is
delivered, so a restart reads again every match of a digest not yet delivered. What
it must not do is deliver again what was delivered, or cut a digest differently the
second time; so each alert has a :class:`DigestState` in the compacted digests topic:

- ``delivered``: per partition, the last offset of this alert's matches delivered (or
  dead-lettered). Matches at or below it are skipped when read again.
- ``sending``: written *before* a digest is posted: its idempotency key and, per
  partition, the last offset it holds. After a restart in the middle of a post, exactly
  those matches form the digest again (same body, same key): the receiver sees a repeat
  at worst, never a digest cut differently.

A window opens at the ``matched_at`` of its first pending match and is due ``digest``
seconds later (so the same after a restart), once the consumer has read its partitions up
to their end after that moment: a digest holds every match recorded before it was due.
Pure: :mod:`pipeline.alerts.delivery` does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

Item = tuple[TopicPartition, int, dict[str, Any]]
#: A window whose partitions never show as read to their end is sent this much later anyway.
MAX_WAIT_SECONDS = 30.0
#: Matches in one digest at most: a window with more is sent in parts, the first at once
#: (memory and the receiver's request size stay bounded).
MAX_MATCHES = 1000


@dataclass
class DigestState:
    """One alert's digest progress, as kept in the digests topic."""

    alert: str
    delivered: dict[int, int] = field(default_factory=dict)
    sending: dict[str, Any] | None = None

    def encode(self) -> bytes:
        data = {
            "alert": self.alert,
            "delivered": {str(p): o for p, o in sorted(self.delivered.items())},
            "sending": self.sending,
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, name: str, value: bytes) -> DigestState:
        """Raises ValueError for a record this version cannot read."""
        data = json.loads(value)
        if not isinstance(data, dict):
            raise ValueError("a digest state is a JSON object")
        delivered = {int(p): int(o) for p, o in (data.get("delivered") or {}).items()}
        sending = data.get("sending")
        if sending is not None:
            sending = {
                "key": str(sending["key"]),
                "through": {str(p): int(o) for p, o in sending["through"].items()},
                "count": int(sending["count"]),
            }
        return cls(alert=name, delivered=delivered, sending=sending)


def through(items: Sequence[Item]) -> dict[str, int]:
    """Per partition (as a string, JSON's key type), the last offset among ``items``."""
    out: dict[str, int] = {}
    for tp, offset, _ in items:
        key = str(tp.partition)
        out[key] = max(out.get(key, -1), offset)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def opened_at(items: Sequence[Item], default: float) -> float:
    """When a window opened: its first match's ``matched_at`` (``default`` if none has it)."""
    times = [float(r["matched_at"]) for _, _, r in items if _number(r.get("matched_at"))]
    return min(times) if times else default


class DigestBook:
    """Every digest alert's pending matches and persisted state."""

    def __init__(self, states: Mapping[str, DigestState] | None = None) -> None:
        self.states: dict[str, DigestState] = dict(states or {})
        self.pending: dict[str, list[Item]] = {}
        #: Per partition of the alerts topic: one past the last offset read (any alert's).
        self.position: dict[int, int] = {}

    def seen(self, tp: TopicPartition, offset: int) -> None:
        self.position[tp.partition] = max(self.position.get(tp.partition, 0), offset + 1)

    def holds(self, name: str) -> bool:
        """True while ``name`` has pending matches or a digest being sent."""
        state = self.states.get(name)
        return bool(self.pending.get(name)) or (state is not None and state.sending is not None)

    def take(self, name: str, item: Item) -> bool:
        """Add a match to its alert's window; False when it was delivered before (a
        record read again after a restart: the caller marks it done)."""
        tp, offset, _ = item
        self.seen(tp, offset)
        state = self.states.get(name)
        if state is not None and offset <= state.delivered.get(tp.partition, -1):
            return False
        self.pending.setdefault(name, []).append(item)
        return True

    def due(
        self,
        name: str,
        window_seconds: float,
        now: float,
        caught_up_at: Mapping[TopicPartition, float],
        limit: int = MAX_MATCHES,
    ) -> list[Item]:
        """The matches of ``name``'s digest if it is due now (removed from pending), else
        an empty list. A digest interrupted while being sent is due as soon as all its
        matches are read again, and holds exactly them. ``limit`` matches are due at once."""
        items = self.pending.get(name) or []
        if not items:
            return []
        state = self.states.get(name)
        chosen: list[Item] = []
        if state is not None and state.sending is not None:
            last = state.sending["through"]
            if any(self.position.get(int(p), 0) <= offset for p, offset in last.items()):
                return []
            chosen = [i for i in items if i[1] <= last.get(str(i[0].partition), -1)]
            if not chosen:  # its matches were committed as done: nothing left to send again
                state.sending = None
        if (state is None or state.sending is None) and len(items) >= limit:
            chosen = items[:limit]
        elif state is None or state.sending is None:
            deadline = opened_at(items, now) + window_seconds
            if now < deadline:
                return []
            read = all(caught_up_at.get(tp, 0.0) >= deadline for tp in {i[0] for i in items})
            if not read and now < deadline + max(window_seconds, MAX_WAIT_SECONDS):
                return []
            chosen = list(items)
        chosen_ids = {(i[0], i[1]) for i in chosen}
        self.pending[name] = [i for i in items if (i[0], i[1]) not in chosen_ids]
        return chosen

    def start_sending(self, name: str, items: Sequence[Item], key: str) -> DigestState:
        """The state to persist before posting ``items`` as one digest."""
        state = self.states.setdefault(name, DigestState(name))
        state.sending = {"key": key, "through": through(items), "count": len(items)}
        return state

    def finish(self, name: str, items: Sequence[Item]) -> DigestState:
        """The state to persist once ``items`` are delivered or dead-lettered."""
        state = self.states.setdefault(name, DigestState(name))
        for partition, offset in through(items).items():
            p = int(partition)
            state.delivered[p] = max(state.delivered.get(p, -1), offset)
        state.sending = None
        return state

    def drop(self, name: str) -> list[Item]:
        """Forget an alert that no longer exists or has no webhook; returns its pending."""
        self.states.pop(name, None)
        return self.pending.pop(name, [])


__all__ = [
    "MAX_MATCHES",
    "MAX_WAIT_SECONDS",
    "DigestBook",
    "DigestState",
    "Item",
    "opened_at",
    "through",
]

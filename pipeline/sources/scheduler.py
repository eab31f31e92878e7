"""When each feed's next request may start: due times in a heap, politeness per host.

Pure and synchronous (the poller passes the clock in), O(log n) per feed event, no scan
of all feeds ever: a heap of ``(due, seq, key)`` for every scheduled feed (a rescheduled
or removed feed leaves a stale entry behind, skipped when it surfaces); a feed that is due
moves to its host's FIFO queue; a heap of host wake-up times holds every host with
waiting feeds that may start one (fewer than ``per_host`` requests in flight) once its
minimum gap between request starts (or a ``Retry-After``) has passed. A host at its limit
is woken by :meth:`Scheduler.finished`. So the request deadline of a feed starts when it
is handed out, never while it waits for a place.

First polls spread over the interval: :func:`first_due` puts a feed without state at a
fixed fraction of its interval derived from its key, so 200,000 new feeds do not all
fall due at once, and the same feed gets the same place after every restart.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from dataclasses import dataclass, field


def spread(key: str) -> float:
    """A fraction in [0, 1) fixed by ``key`` (deterministic jitter)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def first_due(key: str, now: float, interval: float) -> float:
    """Due time of a feed polled for the first time: spread over one interval."""
    return now + spread(key) * interval


@dataclass(slots=True)
class _Host:
    in_flight: int = 0
    next_start: float = 0.0  # earliest start of the next request (gap, Retry-After)
    waiting: deque[tuple[float, str]] = field(default_factory=deque)
    queued: bool = False  # in the wake heap


@dataclass(frozen=True, slots=True)
class Start:
    """A feed whose request may start now, and when it was due (for the lag)."""

    key: str
    host: str
    due: float


class Scheduler:
    """Due times and per-host politeness; see the module docstring."""

    def __init__(self, per_host: int = 2, host_gap: float = 0.0) -> None:
        self.per_host = max(1, per_host)
        self.host_gap = max(0.0, host_gap)
        self._heap: list[tuple[float, int, str]] = []
        self._entry: dict[str, tuple[int, str]] = {}  # key -> (seq, host) of its live entry
        self._seq = 0
        self._hosts: dict[str, _Host] = {}
        self._wake: list[tuple[float, str]] = []
        self._cancelled: set[str] = set()  # removed while waiting for their host
        self.max_in_flight_per_host = 0  # the highest ever seen (benchmarks, tests)

    def __len__(self) -> int:
        return len(self._entry)

    def __contains__(self, key: str) -> bool:
        return key in self._entry

    def schedule(self, key: str, host: str, due: float) -> None:
        """(Re)schedule ``key`` at ``due``; an earlier entry of it is dropped."""
        self._seq += 1
        self._cancelled.discard(key)
        self._entry[key] = (self._seq, host)
        heapq.heappush(self._heap, (due, self._seq, key))

    def remove(self, key: str) -> None:
        """Stop scheduling ``key`` (its entries become stale)."""
        if self._entry.pop(key, None) is None:
            self._cancelled.add(key)  # maybe waiting in its host's queue

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host()
        return state

    def _wake_host(self, name: str, host: _Host) -> None:
        if not host.queued and host.waiting and host.in_flight < self.per_host:
            # Free hosts take turns in the order their oldest waiting feed fell due.
            host.queued = True
            heapq.heappush(self._wake, (max(host.next_start, host.waiting[0][0]), name))

    def _release_due(self, now: float) -> None:
        """Move the feeds that are due into their hosts' queues."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, seq, key = heapq.heappop(heap)
            entry = self._entry.get(key)
            if entry is None or entry[0] != seq:
                continue  # rescheduled or removed since
            del self._entry[key]
            name = entry[1]
            host = self._host(name)
            host.waiting.append((due, key))
            self._wake_host(name, host)

    def ready(self, now: float, budget: int) -> list[Start]:
        """Up to ``budget`` feeds whose requests may start now (each counted in flight
        for its host until :meth:`finished`)."""
        self._release_due(now)
        out: list[Start] = []
        while self._wake and len(out) < budget and self._wake[0][0] <= now:
            _, name = heapq.heappop(self._wake)
            host = self._hosts[name]
            if host.next_start > now:  # held (Retry-After) since it was queued
                heapq.heappush(self._wake, (host.next_start, name))
                continue
            host.queued = False
            while host.waiting and self._stale(host.waiting[0][1]):
                host.waiting.popleft()
            if not host.waiting or host.in_flight >= self.per_host:
                continue
            due, key = host.waiting.popleft()
            host.in_flight += 1
            self.max_in_flight_per_host = max(self.max_in_flight_per_host, host.in_flight)
            host.next_start = now + self.host_gap
            out.append(Start(key, name, due))
            self._wake_host(name, host)
        return out

    def _stale(self, key: str) -> bool:
        """A waiting feed rescheduled (a newer entry counts) or removed since."""
        if key in self._cancelled:
            self._cancelled.discard(key)
            return True
        return key in self._entry

    def finished(self, host: str, now: float) -> None:
        """A request to ``host`` ended: its place is free."""
        state = self._hosts.get(host)
        if state is None:
            return
        state.in_flight = max(0, state.in_flight - 1)
        if not state.in_flight and not state.waiting and state.next_start <= now:
            del self._hosts[host]  # nothing left to remember about it
            return
        self._wake_host(host, state)

    def hold_host(self, host: str, until: float) -> None:
        """No new request to ``host`` before ``until`` (a 429/503 ``Retry-After``); a
        wake-up queued earlier is pushed back when it surfaces."""
        state = self._host(host)
        state.next_start = max(state.next_start, until)

    def waiting(self) -> int:
        """Feeds due but not started (waiting for their host)."""
        return sum(len(h.waiting) for h in self._hosts.values())

    def next_wake(self, now: float) -> float | None:
        """When :meth:`ready` may have something next (None: nothing scheduled)."""
        times = []
        if self._heap:
            times.append(self._heap[0][0])
        if self._wake:
            times.append(self._wake[0][0])
        return min(times) if times else None


__all__ = ["Scheduler", "Start", "first_due", "spread"]

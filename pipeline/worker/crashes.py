"""Records in flight when the worker process died, counted across restarts.

:mod:`pipeline.worker.poison` isolates a record that makes a batch *raise*. A record that
kills the whole process (a segfault in a native library, the kernel's OOM killer, an
``os._exit``) leaves no exception to catch: the batch comes back after every restart, and
counting in memory starts again at zero, so it was a crash loop. Here each stage notes, for
each partition, which offsets it is working on in a small compacted topic
(``NEWSWIRE_TOPIC_INFLIGHT``) before the work and clears the note after it. A note still
set when a worker (this one after a restart, or another after a rebalance) takes the
partition means the process died with those records in flight: each gets one more
*suspicion*. A worker that only *loses* a partition in a rebalance is not dead: before it
lets the partition go (the revocation callback, awaited before the group re-forms) it
clears its notes of that partition, and writes none for it afterwards, so the next owner
counts no death for a batch that merely straddled the rebalance. A suspect record is then
handled alone, so the next death names it exactly; one in flight at
``NEWSWIRE_WORKER_CRASH_LIMIT`` deaths goes to the DLQ with that reason and the partition
goes on. The cost when nothing crashes: two small records per batch and
partition (one round trip each, sent together).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer

from pipeline.kafka.client import bootstrap, start_client
from pipeline.kafka.compacted import read_to_end
from pipeline.kafka.security import client_options
from pipeline.kafka.topics import wait_partitions
from pipeline.settings import Settings
from pipeline.worker.decode import Values

log = structlog.get_logger(__name__)

Value = tuple[bytes | None, dict[str, Any]]
Send = Callable[[str, str, Sequence[tuple[bytes | None, bytes]]], Awaitable[int]]
Read = Callable[[set[str]], Awaitable[dict[str, bytes | None]]]


# ----------------------------------------------------------------------------- pure


@dataclass
class Note:
    """One stage's note for one partition: offsets in flight, and suspicion counts."""

    inflight: list[int] = field(default_factory=list)
    suspects: dict[int, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(
            {"inflight": ranges(self.inflight), "suspects": self.suspects}, sort_keys=True
        ).encode("utf-8")

    @classmethod
    def decode(cls, raw: bytes | None) -> Note:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            inflight=expand(data.get("inflight") or []),
            suspects={int(k): int(v) for k, v in (data.get("suspects") or {}).items()},
        )

    def after_death(self) -> Note:
        """The note read back after the process died: each offset in flight is suspected
        once more, and nothing is in flight any longer."""
        suspects = dict(self.suspects)
        for offset in self.inflight:
            suspects[offset] = suspects.get(offset, 0) + 1
        return Note([], suspects)


def ranges(offsets: Iterable[int]) -> list[list[int]]:
    """Sorted offsets as ``[first, last]`` runs (a batch is mostly one run)."""
    out: list[list[int]] = []
    for offset in sorted(set(offsets)):
        if out and out[-1][1] == offset - 1:
            out[-1][1] = offset
        else:
            out.append([offset, offset])
    return out


def expand(runs: Sequence[Sequence[int]]) -> list[int]:
    return [o for first, last in runs for o in range(int(first), int(last) + 1)]


def note_key(group: str, stage: str, topic: str, partition: int) -> str:
    return f"{group}|{stage}|{topic}|{partition}"


def key_parts(key: str) -> tuple[str, str, int]:
    """``(stage, topic, partition)`` of a :func:`note_key` (a topic name has no ``|``)."""
    _, stage, topic, partition = key.rsplit("|", 3)
    return stage, topic, int(partition)


@dataclass
class Plan:
    """How to run a batch: ``rest`` together, each of ``alone`` by itself, ``dead`` to the
    DLQ (each with the number of deaths it was in flight for)."""

    rest: list[Value] = field(default_factory=list)
    alone: list[Value] = field(default_factory=list)
    dead: list[tuple[Value, int]] = field(default_factory=list)

    def parts(self) -> list[list[Value]]:
        return ([self.rest] if self.rest else []) + [[value] for value in self.alone]


def plan_batch(values: Values, suspicion: dict[tuple[str, int, int], int], limit: int) -> Plan:
    """Split a batch by each record's suspicion (``(topic, partition, offset) -> deaths``).

    A record goes alone from ``limit - 1`` deaths on (at least 1), so one death that was
    not one (a stop that had to cancel a batch, a revocation whose note could not be
    written) does not slow the next owner down, while the last death before the limit
    names the record exactly."""
    plan = Plan()
    alone_from = max(1, limit - 1)
    for value in values:
        where = value[1]
        deaths = suspicion.get((where["topic"], where["partition"], where["offset"]), 0)
        if deaths >= limit:
            plan.dead.append((value, deaths))
        elif deaths >= alone_from:
            plan.alone.append(value)
        else:
            plan.rest.append(value)
    return plan


def by_partition(values: Sequence[Value]) -> dict[tuple[str, int], list[int]]:
    out: dict[tuple[str, int], list[int]] = {}
    for _, where in values:
        out.setdefault((where["topic"], where["partition"]), []).append(where["offset"])
    return out


def death_reason(deaths: int, limit: int) -> str:
    return (
        f"the worker process died {deaths} times while this record was being handled "
        f"(NEWSWIRE_WORKER_CRASH_LIMIT={limit}); no traceback: the process ended without "
        "raising (killed, out of memory, a crash in native code). Look at the worker's "
        "last log lines before each restart"
    )


# ------------------------------------------------------------------------------ I/O


async def read_notes(settings: Settings, keys: set[str]) -> dict[str, bytes | None]:
    """The latest note of each of ``keys`` in the in-flight topic (absent: none written)."""
    found: dict[str, bytes | None] = {}
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await start_client(consumer, bootstrap(settings))
    try:
        tps = await wait_partitions(consumer, settings.topic_inflight)

        def keep(record: Any) -> None:
            key = record.key.decode("utf-8") if record.key else ""
            if key in keys:
                found[key] = record.value

        await read_to_end(consumer, tps, keep)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return found


class CrashLedger:
    """The notes of this worker's stages, kept in memory and in the compacted topic.

    A partition's note is read from the topic before the first batch of it this worker
    handles after an assignment (:meth:`ensure`), never concurrently with its own batches:
    a batch noted before the read would look like a death, and one planned before it would
    overwrite the suspicions the topic holds. Writes go only to notes read since the last
    assignment (``loaded``): a partition revoked here is cleared once (:meth:`release`)
    and then belongs to its next owner, even while a batch of it still runs here."""

    #: Bound on the revocation's write: a rebalance must not wait on an unreachable broker.
    RELEASE_TIMEOUT = 10.0

    def __init__(self, settings: Settings, send: Send, read: Read | None = None) -> None:
        self.settings = settings
        #: ``KafkaOutput.send`` in the worker (through Kafka outages); a list in unit tests.
        self.send = send
        self.read: Read = read or (lambda keys: read_notes(settings, keys))
        self.limit = settings.worker_crash_limit
        self.notes: dict[str, Note] = {}
        #: Keys whose note in memory is the current one (read since the last assignment).
        self.loaded: set[str] = set()
        #: Keys whose batch is in progress here: their note stays as it is on a rebalance.
        self.busy: set[str] = set()
        self._lock = asyncio.Lock()
        #: Per stage: a note's check-then-write is not interleaved with a release.
        self._writes: dict[str, asyncio.Lock] = {}
        #: Counts releases, so a read that a revocation overtook does not mark its notes
        #: as this worker's.
        self._releases = 0

    def _key(self, stage: str, topic: str, partition: int) -> str:
        return note_key(self.settings.worker_id, stage, topic, partition)

    def _write_lock(self, stage: str) -> asyncio.Lock:
        return self._writes.setdefault(stage, asyncio.Lock())

    def forget(self) -> None:
        """Partitions were assigned: read the notes again before the next batch of each
        (another worker may have died with some of them in flight), except those of a
        batch in progress here."""
        self.loaded &= self.busy

    async def ensure(self, stage: str, values: Values) -> None:
        """Read the notes of the batch's partitions, if not read since the assignment; a
        note left in flight counts a death of the process that wrote it."""
        keys = {self._key(stage, t, p) for t, p in by_partition(values)}
        if keys <= self.loaded:
            return
        async with self._lock:
            missing = keys - self.loaded
            if not missing:
                return
            releases = self._releases
            found = await self.read(missing)
            for key in missing:
                note = Note.decode(found.get(key))
                if note.inflight:
                    log.warning(
                        "worker.died_with_records_in_flight",
                        note=key,
                        offsets=ranges(note.inflight),
                        action="each is handled alone; at the crash limit it goes to the DLQ",
                    )
                self.notes[key] = note.after_death()
            if releases == self._releases:
                self.loaded |= missing

    def plan(self, stage: str, values: Values) -> Plan:
        suspicion: dict[tuple[str, int, int], int] = {}
        for (topic, partition), _ in by_partition(values).items():
            note = self.notes.get(self._key(stage, topic, partition))
            if note is not None:
                for offset, deaths in note.suspects.items():
                    suspicion[(topic, partition, offset)] = deaths
        return plan_batch(values, suspicion, self.limit)

    async def begin(self, stage: str, part: Sequence[Value]) -> None:
        """Note ``part``'s offsets as in flight, before any work on them."""

        def in_flight(note: Note, offsets: list[int]) -> None:
            note.inflight = list(offsets)

        await self._write(stage, part, in_flight, busy=True)

    async def end(self, stage: str, part: Sequence[Value], *, handled: bool = True) -> None:
        """Clear the note of ``part``: handled records are no longer suspects (a part
        handed back on a stop keeps its suspicions, and is not counted as a death)."""

        def cleared(note: Note, offsets: list[int]) -> None:
            note.inflight = []
            if handled:
                for offset in offsets:
                    note.suspects.pop(offset, None)

        await self._write(stage, part, cleared, busy=False)

    async def _write(
        self,
        stage: str,
        part: Sequence[Value],
        change: Callable[[Note, list[int]], None],
        *,
        busy: bool,
    ) -> None:
        """Apply ``change`` to the note of each of ``part``'s partitions and write the
        notes this worker still holds (not released to another worker meanwhile)."""
        async with self._write_lock(stage):
            records = []
            for (topic, partition), offsets in by_partition(part).items():
                key = self._key(stage, topic, partition)
                note = self.notes.setdefault(key, Note())
                change(note, offsets)
                if busy:
                    self.busy.add(key)
                else:
                    self.busy.discard(key)
                if key in self.loaded:
                    records.append((key.encode("utf-8"), note.encode()))
            if records:
                await self.send(stage, self.settings.topic_inflight, records)

    async def release(self, revoked: Iterable[tuple[str, int]]) -> None:
        """Partitions are being revoked (a rebalance, not a death): clear the notes this
        worker has of them before the group re-forms, and stop writing them, so their next
        owner reads no records in flight. A write that fails or times out leaves the note
        as it was: the next owner counts one death, which only makes those records
        suspects early (the crash limit is reached only by repeated deaths)."""
        self._releases += 1
        gone = {(topic, partition) for topic, partition in revoked}
        by_stage: dict[str, list[str]] = {}
        for key in self.loaded:
            stage, topic, partition = key_parts(key)
            if (topic, partition) in gone:
                by_stage.setdefault(stage, []).append(key)
        for stage, stage_keys in by_stage.items():
            async with self._write_lock(stage):
                self.loaded.difference_update(stage_keys)
                records = []
                for key in stage_keys:
                    note = self.notes.get(key)
                    if note is not None and note.inflight:
                        note.inflight = []
                        records.append((key.encode("utf-8"), note.encode()))
                if not records:
                    continue
                try:
                    await asyncio.wait_for(
                        self.send(stage, self.settings.topic_inflight, records),
                        self.RELEASE_TIMEOUT,
                    )
                except Exception as exc:  # a rebalance must go on
                    log.warning(
                        "worker.inflight_note_not_released",
                        stage=stage,
                        notes=len(records),
                        error=f"{type(exc).__name__}: {exc}",
                        effect="the next owner counts one death for these records",
                    )


__all__ = [
    "CrashLedger",
    "Note",
    "Plan",
    "by_partition",
    "death_reason",
    "expand",
    "key_parts",
    "note_key",
    "plan_batch",
    "ranges",
    "read_notes",
]

"""Records in flight when the process died: the notes and the plan of a batch (pure)."""

from __future__ import annotations

from typing import Any

from pipeline.worker.crashes import (
    Note,
    by_partition,
    death_reason,
    expand,
    key_parts,
    note_key,
    plan_batch,
    ranges,
)


def _value(offset: int, partition: int = 0) -> tuple[bytes, dict[str, Any]]:
    return (b"{}", {"topic": "raw", "partition": partition, "offset": offset, "key": None})


def test_offsets_are_stored_as_runs_and_read_back() -> None:
    assert ranges([5, 3, 4, 9, 10, 12]) == [[3, 5], [9, 10], [12, 12]]
    assert expand(ranges([5, 3, 4, 9, 10, 12])) == [3, 4, 5, 9, 10, 12]
    note = Note(inflight=list(range(100, 600)), suspects={7: 2})
    assert len(note.encode()) < 100  # a batch is one run, whatever its size
    assert Note.decode(note.encode()) == note
    assert Note.decode(None) == Note() and Note.decode(b"") == Note()


def test_a_note_left_in_flight_adds_one_death_to_each_of_its_records() -> None:
    note = Note(inflight=[4, 5, 6], suspects={5: 1, 9: 2})
    after = note.after_death()
    assert after == Note([], {4: 1, 5: 2, 6: 1, 9: 2})
    assert after.after_death() == after  # a cleared note counts nothing more


def test_the_plan_runs_suspects_alone_and_dead_letters_at_the_limit() -> None:
    values = [_value(n) for n in range(6)] + [_value(3, partition=1)]
    # Limit 3: one death (it may have been a rebalance) changes nothing; alone from two.
    suspicion = {("raw", 0, 1): 1, ("raw", 0, 2): 2, ("raw", 0, 4): 3, ("raw", 1, 3): 2}
    plan = plan_batch(values, suspicion, limit=3)
    assert [v[1]["offset"] for v in plan.rest] == [0, 1, 3, 5]
    assert [(v[1]["partition"], v[1]["offset"]) for v in plan.alone] == [(0, 2), (1, 3)]
    assert [(v[1]["offset"], deaths) for v, deaths in plan.dead] == [(4, 3)]
    assert [len(part) for part in plan.parts()] == [4, 1, 1]
    assert [v[1]["offset"] for v in plan_batch(values, {("raw", 0, 1): 1}, 2).alone] == [1]
    nothing = plan_batch(values, {}, limit=3)
    assert nothing.parts() == [values] and not nothing.dead


def test_a_whole_crash_loop_ends_with_the_record_in_the_dlq() -> None:
    """Simulate the ledger through process deaths: a batch of 8 with a killer at offset 5."""
    limit, killer = 3, 5
    note = Note()
    deaths = 0
    dead: list[int] = []
    handled: set[int] = set()
    for _restart in range(10):
        note = note.after_death() if note.inflight else note
        pending = [_value(n) for n in range(8) if n not in handled and n not in dead]
        if not pending:
            break
        plan = plan_batch(pending, {("raw", 0, o): c for o, c in note.suspects.items()}, limit)
        for value, _ in plan.dead:
            dead.append(value[1]["offset"])
            note.suspects.pop(value[1]["offset"], None)
        crashed = False
        for part in plan.parts():
            offsets = by_partition(part)[("raw", 0)]
            note.inflight = offsets
            if killer in offsets:
                deaths += 1
                crashed = True
                break
            note.inflight = []
            for offset in offsets:
                note.suspects.pop(offset, None)
            handled.update(offsets)
        if not crashed:
            break
    assert dead == [killer] and deaths == limit
    assert handled == set(range(8)) - {killer}
    assert note.suspects == {} and note.inflight == []


def test_keys_and_reason() -> None:
    assert note_key("g", "enrich", "raw", 3) == "g|enrich|raw|3"
    reason = death_reason(3, 3)
    assert "died 3 times" in reason and "NEWSWIRE_WORKER_CRASH_LIMIT=3" in reason


class TopicDouble:
    """The in-flight topic in memory: latest value per key, and the reads made."""

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}
        self.reads = 0

    async def send(self, stage: str, topic: str, records: Any) -> int:
        for key, value in records:
            self.latest[key.decode()] = value
        return len(records)

    async def read(self, keys: set[str]) -> dict[str, bytes | None]:
        self.reads += 1
        return {k: v for k, v in self.latest.items() if k in keys}


async def test_the_ledger_reads_notes_once_per_assignment_and_counts_deaths() -> None:
    from pipeline.settings import Settings
    from pipeline.worker.crashes import CrashLedger

    settings = Settings(worker_id="g", worker_crash_limit=2)
    topic = TopicDouble()
    batch = [_value(n) for n in range(4)]
    dying = CrashLedger(settings, topic.send, topic.read)
    await dying.ensure("enrich", batch)
    await dying.begin("enrich", batch)  # ... and the process dies here
    restarted = CrashLedger(settings, topic.send, topic.read)
    await restarted.ensure("enrich", batch)
    await restarted.ensure("enrich", batch)  # read once, not per batch
    assert topic.reads == 2
    plan = restarted.plan("enrich", batch)
    assert plan.rest == [] and len(plan.alone) == 4
    await restarted.begin("enrich", [batch[0]])
    await restarted.end("enrich", [batch[0]])
    await restarted.begin("enrich", [batch[1]])  # the killer, alone: dies again
    third = CrashLedger(settings, topic.send, topic.read)
    await third.ensure("enrich", batch[1:])
    plan = third.plan("enrich", batch[1:])
    assert [(v[1]["offset"], d) for v, d in plan.dead] == [(1, 2)]
    assert [v[1]["offset"] for v in plan.alone] == [2, 3]
    # A rebalance: notes are read again, except those of a batch in progress here.
    await third.begin("enrich", [batch[2]])
    third.forget()
    assert third.loaded == {note_key("g", "enrich", "raw", 0)}


async def test_a_partition_lost_in_a_rebalance_is_not_counted_as_a_death() -> None:
    """The old owner clears its note when the partition is revoked and writes none for it
    afterwards, even while its batch still runs; the new owner counts nothing."""
    from pipeline.settings import Settings
    from pipeline.worker.crashes import CrashLedger

    settings = Settings(worker_id="g", worker_crash_limit=2)
    topic = TopicDouble()
    batch = [_value(n) for n in range(4)]
    old = CrashLedger(settings, topic.send, topic.read)
    await old.ensure("sink", batch)
    await old.begin("sink", batch[:2])  # a stalled sink's batch, still running
    await old.release([("raw", 0)])
    new = CrashLedger(settings, topic.send, topic.read)
    await new.ensure("sink", batch)
    assert new.plan("sink", batch).rest == batch  # no suspects, nothing alone
    await new.begin("sink", batch)
    await old.end("sink", batch[:2])  # the old batch ends later: no write
    await old.begin("sink", batch[2:])
    assert Note.decode(topic.latest[note_key("g", "sink", "raw", 0)]).inflight == [0, 1, 2, 3]
    # A death of the new owner is still counted.
    third = CrashLedger(settings, topic.send, topic.read)
    await third.ensure("sink", batch)
    assert len(third.plan("sink", batch).dead) == 0
    assert len(third.plan("sink", batch).alone) == 4


async def test_a_release_that_cannot_be_written_does_not_stop_the_rebalance() -> None:
    from pipeline.settings import Settings
    from pipeline.worker.crashes import CrashLedger

    topic = TopicDouble()

    async def broken(stage: str, name: str, records: Any) -> int:
        if not records or b"[]" not in records[0][1]:
            return await topic.send(stage, name, records)
        raise ConnectionError("broker unreachable")

    ledger = CrashLedger(Settings(worker_id="g"), broken, topic.read)
    batch = [_value(n) for n in range(2)]
    await ledger.ensure("enrich", batch)
    await ledger.begin("enrich", batch)
    await ledger.release([("raw", 0)])  # logs, does not raise
    assert ledger.loaded == set()
    assert Note.decode(topic.latest[note_key("g", "enrich", "raw", 0)]).inflight == [0, 1]


def test_a_note_key_gives_back_its_stage_and_partition() -> None:
    assert key_parts(note_key("news|wire", "sink", "newswire.enriched", 11)) == (
        "sink",
        "newswire.enriched",
        11,
    )

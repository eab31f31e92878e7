"""The Faust app: the topics, and the two agents (raw -> enriched, enriched -> index).

Both agents take micro-batches with manual acknowledgement: an input event is acked, and so
its offset becomes committable, only after its output is safe (the enriched record acked by
Kafka, or the document acknowledged by the search engine, or the record in the DLQ). The
work itself is :class:`pipeline.worker.batches.Worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, cast

import faust
import structlog
from mode.utils.queues import FlowControlQueue

from pipeline import metrics
from pipeline.alerts.delivery import run_delivery
from pipeline.errors import HandedBackError
from pipeline.kafka.client import bootstrap
from pipeline.kafka.security import faust_broker_options
from pipeline.settings import Settings
from pipeline.worker.acks import AckGuard
from pipeline.worker.batches import Worker
from pipeline.worker.crashes import CrashLedger, death_reason
from pipeline.worker.decode import Values
from pipeline.worker.dlq import dlq_record, send_dead_letters
from pipeline.worker.failstop import fail_stop
from pipeline.worker.poison import isolate
from pipeline.worker.retention_guard import RetentionGuard

log = structlog.get_logger(__name__)
BatchHandler = Callable[[Values], Awaitable[int]]
#: Seconds a batch in progress may take to finish when the worker is asked to stop.
STOP_GRACE = 20.0


#: Faust pauses fetching a partition once its agent's buffer holds ``1/ratio`` of its size.
PRESSURE_HIGH_RATIO: float = FlowControlQueue.pressure_high_ratio


def fetch_limit(buffer: int, partitions: int) -> int:
    """Records one poll of the consumer may return (``broker_max_poll_records``) so that an
    agent's buffer of ``buffer`` records can never overflow.

    The worker has one consumer for both agents, and Faust hands fetched records to the
    agents' buffers one by one, waiting while a buffer is full: one full buffer (a sink
    waiting for the search engine) stops the other agent too. Faust stops fetching a
    partition once the buffer passes its high mark, but the records of a poll already made
    still go in, and every partition of the topic (at most ``partitions``) may be in that
    state once. Uncapped, a poll returns whatever was fetched (up to 1 MiB of compressed
    records per partition): after a rebalance, which empties the buffers, the backlog of a
    stalled sink came back in polls larger than the room left and the enrichment stopped.
    So a poll is capped at the room above the high mark, shared out."""
    room = buffer - math.floor(buffer / PRESSURE_HIGH_RATIO)
    return max(1, room // max(1, partitions))


def positions(wheres: Iterable[dict[str, Any]]) -> dict[str, list[int]]:
    """``{"topic/partition": [first offset, last offset]}`` of a batch's records: a batch
    holds a contiguous run of each partition's offsets, so this names every record of it
    (the latency benchmark maps articles to batches with it)."""
    out: dict[str, list[int]] = {}
    for where in wheres:
        key = f"{where['topic']}/{where['partition']}"
        span = out.setdefault(key, [where["offset"], where["offset"]])
        span[0] = min(span[0], where["offset"])
        span[1] = max(span[1], where["offset"])
    return out


def _where(event: Any) -> dict[str, Any]:
    message = event.message
    key = message.key.decode("utf-8", errors="replace") if message.key else None
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": key,
    }


class FaustWorker(faust.Worker):
    """Faust's worker with Newswire's structured logging instead of Faust's own format, and
    a stop in order: the agents first (their batches finished or handed back), then the
    connections they write through (see :func:`create_app`)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.newswire_settings = settings
        super().__init__(app, loglevel=settings.log_level.lower(), redirect_stdouts=False)

    async def on_shutdown(self) -> None:
        # Runs after the app and its agents stopped: nothing writes through these anymore.
        work: Worker | None = getattr(self.app, "newswire_worker", None)
        if work is not None:
            await work.stop()
        log.info("worker.stopped")
        await super().on_shutdown()

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        from pipeline.logs import configure

        configure(self.newswire_settings.log_level, self.newswire_settings.log_format)


#: Why a finished batch is not acknowledged (see ``revocations`` in :func:`create_app`).
REVOKED_WHILE_RUNNING = (
    "its partitions were revoked while it ran: their owner reads them again from the "
    "committed offset (its output is written; the second pass finds it there)"
)


def create_app(
    settings: Settings, worker: Worker | None = None, ledger: CrashLedger | None = None
) -> faust.App:
    """The Faust app with the topics of docs/architecture.md and the two agents (``worker`` is the
    work they call, ``ledger`` the notes of records in flight; tests pass stand-ins)."""
    datadir = settings.home / "worker"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust does not create it
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{bootstrap(settings)}",
        **faust_broker_options(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker_session_timeout,
        web_host=settings.worker_web_host,
        web_bind=settings.worker_web_host,
        web_port=settings.worker_web_port or 6066,
        web_enabled=settings.worker_web_port > 0,
        # A stop does not wait for every buffered event to be acked (a sink waiting for the
        # search engine would never let it end): acked offsets are committed, the batches
        # in progress get ``STOP_GRACE`` seconds, then are cancelled unacked (handed back).
        stream_wait_empty=False,
        # A stalled agent fills its own buffer only, never the consumer both agents share.
        stream_buffer_maxsize=settings.worker_buffer,
        broker_max_poll_records=fetch_limit(settings.worker_buffer, settings.topic_partitions),
        logging_config=None,
    )
    raw = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes, value_serializer="raw")
    enriched_topic = app.topic(
        settings.topic_enriched, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    copies_topic = app.topic(
        settings.topic_copies, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    worker = worker or Worker(settings)
    within = timedelta(seconds=settings.batch_seconds)

    busy: set[str] = set()  # the stages with a batch in progress
    #: Revocations so far. A batch taken before the latest one is not acknowledged: its
    #: partitions now belong to their next owner (this worker again, perhaps), which reads
    #: them from the committed offset. Faust would record such late acks against the new
    #: assignment, and with no committed offset yet it commits past records not handled.
    revocations = [0]
    guard = RetentionGuard(settings)  # partitions stopped: offsets out of retention
    acks = AckGuard()  # Faust's own acks of messages no agent handled are refused

    # The notes of records in flight, so a record that kills the process is counted.
    async def send_notes(
        stage: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> int:
        return await worker.output.send(stage, topic, records)

    ledger = ledger or CrashLedger(settings, send_notes)
    idle = asyncio.Event()  # set whenever ``busy`` empties

    async def handle_isolating(stage: str, handle: BatchHandler, values: Values) -> int:
        """``handle`` the batch; when it keeps failing with an unexpected error, split it
        until the failing records are alone (:mod:`pipeline.worker.poison`): those go to
        the DLQ with their traceback, the others are handled (sending a part twice is
        harmless: deterministic ids and external versions)."""
        counts: list[int] = []

        async def work(part: Sequence[tuple[bytes | None, dict[str, Any]]]) -> list[None]:
            counts.append(await handle(part))
            return [None] * len(part)

        outcome = await isolate(
            values, work, retries=settings.batch_failure_retries, passthrough=(HandedBackError,)
        )
        if outcome.poison:
            metrics.WORKER_BAD_INPUT.labels("poison").inc(len(outcome.poison))
            await send_dead_letters(
                worker.output,
                [
                    dlq_record(value, f"unexpected error: {trace}", stage, **where)
                    for (value, where), trace in outcome.poison
                ],
            )
        return sum(counts)  # the calls that failed added nothing

    async def handle_noted(stage: str, handle: BatchHandler, values: Values) -> int:
        """``handle_isolating`` with the records noted in flight (:mod:`.crashes`): records
        that were in flight when a process died are handled alone, and those at the crash
        limit go to the DLQ, so a record that kills the process cannot loop forever."""
        # Through Kafka outages like any output; a stop hands the batch back.
        await worker.output.until_kafka_takes(stage, lambda: ledger.ensure(stage, values))
        plan = ledger.plan(stage, values)
        if plan.dead:
            metrics.WORKER_BAD_INPUT.labels("crash").inc(len(plan.dead))
            await send_dead_letters(
                worker.output,
                [
                    dlq_record(value, death_reason(deaths, ledger.limit), stage, **where)
                    for (value, where), deaths in plan.dead
                ],
            )
            await ledger.end(stage, [value for value, _ in plan.dead])
        done = 0
        for part in plan.parts():
            await ledger.begin(stage, part)
            try:
                done += await handle_isolating(stage, handle, part)
            except HandedBackError:
                await ledger.end(stage, part, handled=False)
                raise
            await ledger.end(stage, part)
        return done

    async def consume(stream: Any, stage: str, handle: BatchHandler) -> None:
        """Micro-batches; each event is acked only once ``handle`` made its output safe.

        A batch is finished or handed back, never half-acked: on a stop request a batch
        that waits (search engine or recogniser down) raises HandedBackError and nothing of
        it is acked; Kafka redelivers it to the next worker. Any other error fail-stops."""
        async for taken_events in stream.noack_take(settings.batch_size, within=within):
            if worker.stopping.is_set():
                log.info(f"{stage}.batch_handed_back", records=len(taken_events), reason="stopping")
                return
            # Records of a stopped partition (out of retention) are neither handled nor
            # acknowledged: its committed offset stays where the gap is.
            await guard.checked.wait()
            events = [e for e in taken_events if not guard.is_stopped(e.message.tp)]
            if not events:
                continue
            busy.add(stage)
            idle.clear()
            taken = time.time()
            generation = revocations[0]
            values = [(e.value, _where(e)) for e in events]
            try:
                done = await handle_noted(stage, handle, values)
            except HandedBackError as exc:
                log.info(f"{stage}.batch_handed_back", records=len(events), reason=str(exc))
                return
            except Exception as exc:  # the DLQ itself cannot be written
                fail_stop(stage, exc, len(events))
            finally:
                busy.discard(stage)
                if not busy:
                    idle.set()
            if generation != revocations[0]:
                log.info(
                    f"{stage}.batch_not_acked", records=len(events), reason=REVOKED_WHILE_RUNNING
                )
                continue
            for event in events:
                await acks.ack(stream, event)
            # One line per batch, with wall-clock stage times (epoch seconds), so where the
            # time goes can be read from the log (bench/bench_latency.py does).
            log.info(
                f"{stage}.batch",
                records=len(events),
                done=done,
                positions=positions(where for _, where in values),
                t_taken=round(taken, 3),
                **{f"t_{k}": round(v, 3) for k, v in worker.marks.get(stage, {}).items()},
                t_acked=round(time.time(), 3),
            )

    @app.agent(raw, name="enrich")
    async def enrich(stream: Any) -> None:
        await consume(stream, "enrich", worker.enrich_batch)

    @app.agent(copies_topic, name="copies")
    async def copies(stream: Any) -> None:
        await consume(stream, "copies", worker.copies_batch)

    @app.agent(enriched_topic, name="sink")
    async def sink(stream: Any) -> None:
        await consume(stream, "sink", worker.index_batch)

    delivery_stop = asyncio.Event()
    if settings.webhook_delivery:

        @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
        async def deliver_webhooks() -> None:
            """Webhook deliveries beside the agents: their own consumer group and tasks, so
            a slow or failing webhook never holds up ingest (``alerts/delivery.py``)."""
            await run_delivery(settings, delivery_stop)

    @app.page("/metrics/")
    async def prometheus(web: Any, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def _stopping(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Before the agents are stopped: waiting batches are handed back at once, a batch
        doing work gets ``STOP_GRACE`` seconds to finish (then it is cancelled, unacked).
        The connections close later, in FaustWorker.on_shutdown, once no agent runs."""
        worker.request_stop()
        delivery_stop.set()
        if busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), STOP_GRACE)
        try:  # the offsets of the batches finished during the grace
            await app.consumer.commit()
        except Exception as exc:  # their redelivery is harmless (deterministic _id)
            log.warning("worker.final_commit_failed", error=f"{type(exc).__name__}: {exc}")
        log.info("worker.stopping", unfinished=sorted(busy), acks_refused=acks.refused)

    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # A rebalance; a batch in progress (a stalled sink's) goes on through it. Losing a
        # partition is not a death: its notes of records in flight are cleared first.
        revocations[0] += 1
        log.info("worker.rebalance", in_progress=sorted(busy), acks_refused=acks.refused)
        await ledger.release((tp.topic, tp.partition) for tp in revoked)

    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # Faust paused every assigned partition before this; gaps stay paused.
        acks.install(app.consumer)
        await guard.on_assigned(app.consumer, assigned)
        ledger.forget()  # notes of records in flight are read again before the next batch

    @app.page("/health/")
    async def health(web: Any, request: Any) -> Any:
        return web.json(guard.health())

    app.on_partitions_assigned.connect(cast(Any, _assigned))
    app.on_partitions_revoked.connect(cast(Any, _revoked))
    app.on_before_shutdown.connect(cast(Any, _stopping))  # mode types miss async receivers
    app.newswire_worker = worker  # type: ignore[attr-defined]  # closed by FaustWorker
    return app

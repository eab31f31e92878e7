"""A Kafka broker restart while the worker ingests (issue 9, fault 3, the worker's side), on
a real broker of the test's own (``restartable_broker``: the session's servers are not
disturbed) with the session's Elasticsearch and CoreNLP: the real ``newswire worker``
process keeps running while the broker is down, reconnects by itself once it is back, and
every article ends up indexed exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import StackError
from pipeline.kafka.topics import ensure_topics
from pipeline.provision import run_setup
from pipeline.settings import Settings
from pipeline.worker.batches import Worker
from workshop.stack import LocalStack

pytestmark = pytest.mark.integration

#: How long the broker stays down (after its stop returned).
OUTAGE_S = 20.0


#: How long a restart may keep failing because its port is held (see ``start_again``).
RESTART_LIMIT_S = 90.0


def start_again(broker: LocalStack) -> None:
    """``broker.up()``, tried again every few seconds while it fails, for up to
    ``RESTART_LIMIT_S``. On a port in the kernel's ephemeral range (a
    NEWSWIRE_TEST_PORT_BASE above 32767) a client reconnecting to the stopped broker can
    connect to itself (same source and destination port) and hold the port the broker
    must bind; aiokafka's producer does so thousands of times a second while it waits for
    a partition leader, until the worker gives up on the send (``PRODUCE_TIMEOUT_MS``) and
    backs off. A production broker's port (9092) is outside that range."""
    deadline = time.monotonic() + RESTART_LIMIT_S
    while True:
        try:
            broker.up()
            return
        except StackError:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)


async def test_broker_restart_mid_ingest_worker_reconnects_and_indexes_exactly_once(
    stack: Any,
    restartable_broker: LocalStack,
    tmp_path: Path,
    isolated: Any,
    worker_process: Any,
    make_articles: Any,
    publish: Any,
    wait_indexed: Any,
    index_count: Any,
    indexed_ids: Any,
    check_exactly_once: Any,
) -> None:
    broker = restartable_broker
    settings: Settings = isolated(
        stack.settings,
        "brokerrestart",
        kafka_bootstrap=broker.kafka.bootstrap,
        batch_size=32,
        batch_seconds=0.5,
    )
    sent = make_articles("restart", 320, seed=12)
    await run_setup(settings)
    worker = worker_process(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, sent)

        await wait_indexed(settings, worker, 40, 300, "the first articles to be indexed", 0.5)
        indexed_at_stop = await index_count(settings) or 0
        stopping = time.monotonic()
        broker.down()
        down_at = time.monotonic()
        while time.monotonic() - down_at < OUTAGE_S:
            assert worker.alive(), "the worker exited while the broker was down\n" + worker.tail()
            await asyncio.sleep(1)
        # The sink may index what it had fetched; the rest needs Kafka back.
        indexed_at_restart = await index_count(settings) or 0
        assert indexed_at_restart < len(sent), "the worker finished before the broker stopped"
        start_again(broker)
        back_at = time.monotonic()
        restart_s = back_at - down_at - OUTAGE_S

        await wait_indexed(settings, worker, indexed_at_restart + 1, 300, "progress", 0.5)
        first_progress_s = time.monotonic() - back_at  # the first document after the restart
        await wait_indexed(
            settings, worker, len(sent), 400, "every article to be indexed after the restart", 1
        )
        recover_s = time.monotonic() - back_at
        assert worker.alive(), worker.tail()
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        log_text = worker.log_file.read_text(errors="replace")
        check_exactly_once(
            "broker-restart", sent, ids, count,
            indexed_before_stop=indexed_at_stop, indexed_at_restart=indexed_at_restart,
            broker_stop_s=round(down_at - stopping, 1), outage_s=OUTAGE_S,
            broker_start_s=round(restart_s, 1), first_progress_s=round(first_progress_s, 1),
            recover_s=round(recover_s, 1), log_lines=log_text.count("\n"),
            kafka_retry_lines=log_text.count("worker.kafka_unavailable"),
        )  # fmt: skip
        assert "worker.fail_stop" not in log_text
        assert worker.log_file.stat().st_size < 5_000_000, "the outage flooded the log"
    finally:
        worker.stop()


async def test_output_sent_while_the_broker_is_down_goes_out_once_it_is_back(
    stack: Any, restartable_broker: LocalStack, isolated: Any, read_topic: Any
) -> None:
    """The worker's output path on its own, deterministic: a send whose producer must
    connect while the broker is stopped waits with backoff (before, the connection error
    fail-stopped the worker) and completes once the broker is back."""
    broker = restartable_broker
    settings = isolated(stack.settings, "sendwait", kafka_bootstrap=broker.kafka.bootstrap)
    await ensure_topics(settings)
    records = [(f"k{n}".encode(), json.dumps({"n": n}).encode()) for n in range(50)]
    worker = Worker(settings)  # its producer not connected yet, as after a replaced one
    try:
        broker.down()
        down_at = time.monotonic()
        sending = asyncio.create_task(
            worker.output.send("enrich", settings.topic_enriched, records)
        )
        await asyncio.sleep(8)
        assert not sending.done(), sending
        await asyncio.to_thread(start_again, broker)
        back_at = time.monotonic()
        sent = await asyncio.wait_for(sending, 120)
        done_s = time.monotonic() - back_at
    finally:
        await worker.stop()
    values = await read_topic(broker.kafka.bootstrap, settings.topic_enriched, len(records))
    keys = {v["n"] for v in values}
    print(
        f"\n[send-while-down] records={len(records)} sent={sent} read_back={len(values)} "
        f"down_s={round(back_at - down_at, 1)} sent_after_restart_s={round(done_s, 1)}"
    )
    assert sent == len(records)
    assert len(keys) == len(records)

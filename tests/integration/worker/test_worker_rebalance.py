"""A rebalance while the sink is stalled (issue 9, fault 5), with real worker processes, the
session's Kafka, CoreNLP and Elasticsearch: the article indices refuse writes (a write block,
as the disk watermark sets) while articles keep coming; a third worker joins, then one
leaves with SIGTERM. Enrichment must go on on every worker after each rebalance (the sinks
stay stalled, their buffers full; the story table, in other indices of the same engine,
still answers), and once the block is lifted every article is indexed exactly once.

Each worker's buffer is small (NEWSWIRE_WORKER_BUFFER=120) so that the sinks' buffers fill
within seconds, as a production buffer of 4096 would in a longer outage: the case where a
full buffer held the consumer both agents share, and so the enrichment, after a rebalance.
A whole engine outage stops enrichment too since the story table lives in the engine
(tests/integration/worker/test_worker_faults.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.provision import run_setup
from pipeline.settings import Settings

if TYPE_CHECKING:
    from tests.plugins.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

#: Seconds enrichment is watched after each rebalance.
WINDOW_S = 12.0
ASSIGNED = "Executing _on_partitions_assigned"


def log_text(worker: WorkerProcess, since: int = 0) -> str:
    with worker.log_file.open("rb") as handle:
        handle.seek(since)
        return handle.read().decode("utf-8", errors="replace")


def log_size(worker: WorkerProcess) -> int:
    return worker.log_file.stat().st_size if worker.log_file.exists() else 0


async def after_rebalance(
    settings: Settings,
    live: list[WorkerProcess],
    since: dict[str, int],
    what: str,
    wait_for: Any,
    topic_size: Any,
) -> dict[str, Any]:
    """Wait until every live worker took its new assignment, then until each enriched
    a batch since (a worker that just joined loads its recogniser first: the bound is
    generous, the time is reported), and at least ``WINDOW_S`` seconds: the enriched
    topic's growth, each worker's enrichment batches and the sinks' batches meanwhile."""

    async def assigned() -> bool:
        for worker in live:
            assert worker.alive(), worker.tail()
        return all(ASSIGNED in log_text(w, since[w.name]) for w in live)

    started = time.monotonic()
    await wait_for(assigned, 90, f"every worker to take its assignment after {what}")
    assigned_s = time.monotonic() - started
    await asyncio.sleep(2)  # a second rebalance right after the first one, if any
    marks = {w.name: log_size(w) for w in live}
    enriched_before = await topic_size(settings, settings.topic_enriched)
    watched = time.monotonic()

    async def every_worker_enriched() -> bool:
        for worker in live:
            assert worker.alive(), f"{worker.name} exited\n" + worker.tail()
        return all("enrich.batch" in log_text(w, marks[w.name]) for w in live)

    await wait_for(every_worker_enriched, 120, f"every worker to enrich a batch after {what}")
    first_batches_s = time.monotonic() - watched
    await asyncio.sleep(max(0.0, WINDOW_S - first_batches_s))
    grown = await topic_size(settings, settings.topic_enriched) - enriched_before
    batches = {w.name: log_text(w, marks[w.name]).count("enrich.batch") for w in live}
    sink_batches = sum(log_text(w, marks[w.name]).count("sink.batch ") for w in live)
    for worker in live:
        assert worker.alive(), f"{worker.name} exited\n" + worker.tail()
    return {
        "assigned_s": round(assigned_s, 1),
        "all_enriching_s": round(first_batches_s, 1),
        "enriched_in_window": grown,
        "enrich_batches": batches,
        "sink_batches": sink_batches,
    }


@pytest.mark.xfail(
    reason="known defect (issue 18, docs/architecture.md 'Known defect'): under load a "
    "rebalance can lose a few records (3 of 8 runs lost 2, 5 and 9 of ~880: a partition kept "
    "across a rebalance resumed past records no agent saw; suspected Faust's fetch loop storing "
    "the read offset of undelivered messages after the re-seek)",
    strict=False,
)
async def test_rebalance_while_sinks_stalled_keeps_enriching_and_indexes_exactly_once(
    stack: Any,
    tmp_path: Path,
    isolated: Any,
    worker_process: Any,
    article_feed: Any,
    make_articles: Any,
    wait_for: Any,
    wait_indexed: Any,
    index_count: Any,
    block_article_writes: Any,
    topic_size: Any,
    indexed_ids: Any,
    check_exactly_once: Any,
) -> None:
    settings = isolated(
        stack.settings,
        "rebalance",
        batch_size=16,
        batch_seconds=0.5,
        topic_partitions=6,
        worker_buffer=120,
    )
    await run_setup(settings)

    def write_block(on: bool) -> None:
        block_article_writes(stack.search_url, settings, on)

    workers: dict[str, WorkerProcess] = {}
    for name in ("a", "b", "c"):
        worker = worker_process(settings, tmp_path / f"worker-{name}.log")
        worker.name = name  # type: ignore[attr-defined]
        workers[name] = worker
    a, b, c = workers["a"], workers["b"], workers["c"]
    feed = article_feed(settings, make_articles("rebalance", 4000, seed=13), batch=8, every=0.5)
    figures: dict[str, Any] = {}
    try:
        a.start()
        b.start()
        feed.start()
        await wait_indexed(settings, a, 24, 240, "the first articles to be indexed", 0.5)
        write_block(True)  # the sinks stall: every bulk item is refused, nothing indexed
        cut_at = time.monotonic()
        indexed_at_cut = await index_count(settings) or 0
        enriched_at_cut = await topic_size(settings, settings.topic_enriched)

        async def backlog() -> bool:
            assert a.alive() and b.alive(), a.tail() + b.tail()
            grown = await topic_size(settings, settings.topic_enriched) - enriched_at_cut
            return grown >= 2 * settings.worker_buffer + 60

        await wait_for(backlog, 120, "a backlog larger than the sinks' buffers", every=1)
        figures["stalled_before_join_s"] = round(time.monotonic() - cut_at, 1)

        since = {w.name: log_size(w) for w in (a, b)} | {"c": 0}
        c.start()  # rebalance 1: a third worker joins while the sinks are stalled
        figures["join"] = await after_rebalance(
            settings, [a, b, c], since, "c joined", wait_for, topic_size
        )

        since = {w.name: log_size(w) for w in (a, c)}
        assert b.process is not None
        b.process.terminate()  # rebalance 2: a worker leaves while the sinks are stalled
        figures["b_exit"] = b.process.wait(90)
        figures["leave"] = await after_rebalance(
            settings, [a, c], since, "b left", wait_for, topic_size
        )

        await feed.stop()
        indexed_while_stalled = (await index_count(settings) or 0) - indexed_at_cut
        write_block(False)
        back_at = time.monotonic()
        sent = feed.sent
        await wait_indexed(
            settings, a, len(sent), 300, "every article to be indexed after the stall", 1.0, sent
        )
        recover_s = time.monotonic() - back_at
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        logs = "".join(log_text(w) for w in workers.values())
        check_exactly_once(
            "rebalance-sink-stalled", sent, ids, count,
            stall_s=round(back_at - cut_at, 1), indexed_while_stalled=indexed_while_stalled,
            recover_s=round(recover_s, 1), **figures,
        )  # fmt: skip
        assert figures["b_exit"] == 0, log_text(b)[-4000:]
        for phase in ("join", "leave"):
            seen = figures[phase]
            assert seen["enriched_in_window"] > 0, f"enrichment stopped after the {phase}"
            stopped = [name for name, n in seen["enrich_batches"].items() if n == 0]
            assert not stopped, f"no enrichment on {stopped} after the {phase}: {seen}"
            assert seen["sink_batches"] == 0, "a sink wrote while the article indices were blocked"
        assert "worker.fail_stop" not in logs
    finally:
        await feed.stop()
        for worker in workers.values():
            worker.stop()

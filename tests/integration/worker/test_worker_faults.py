"""Faults the worker survives, on the real servers (issue 9): the search engine down during
ingest, the worker started while it is down (both agents wait: the story table lives in the
engine), and a graceful SIGTERM mid-ingest.

Each test prints what it measured (articles sent, indexed, duplicates, time to recover);
none asserts on timings, only on "0 lost, 0 duplicated in the index" and on the worker
staying up (or exiting 0 when asked to stop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.provision import run_setup
from pipeline.settings import Settings
from workshop.stack.process import read_pid, stop_process

pytestmark = pytest.mark.integration


class SearchNodeControl:
    """Stops and restarts the session stack's real search node."""

    def __init__(self, stack: Any) -> None:
        if stack.local is None:
            pytest.skip("the search node is not the local test stack's: cannot stop it")
        self.local = stack.local

    def stop(self) -> None:
        node = self.local.search
        pid = read_pid(node.pid_file) or self.local.status().search.pid
        assert pid is not None, "the search node is not running"
        stop_process(pid, timeout=node.stop_timeout, marker=node.marker_for())

    def start(self) -> float:
        """Start it again (the other servers, healthy, are left alone); seconds it took."""
        started = time.monotonic()
        self.local.up()
        return time.monotonic() - started

    def ensure_up(self) -> None:
        if not self.local.status().search.healthy:
            self.local.up()


@pytest.fixture
def search_node(stack: Any) -> Iterator[SearchNodeControl]:
    control = SearchNodeControl(stack)
    yield control
    control.ensure_up()  # whatever happened, the next tests find it running


@pytest.fixture
def fault_settings(stack: Any, isolated: Any) -> Settings:
    return isolated(stack.settings, "faults", batch_size=32, batch_seconds=0.5)


async def test_search_engine_down_60s_during_ingest_loses_and_duplicates_nothing(
    fault_settings: Settings,
    search_node: SearchNodeControl,
    tmp_path: Path,
    worker_process: Any,
    make_articles: Any,
    publish: Any,
    wait_indexed: Any,
    index_count: Any,
    topic_size: Any,
    indexed_ids: Any,
    check_exactly_once: Any,
) -> None:
    settings = fault_settings
    sent = make_articles("outage", 500, seed=9)
    first, second = sent[:250], sent[250:]
    await run_setup(settings)
    worker = worker_process(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, first)

        await wait_indexed(settings, worker, 40, 300, "the first articles to be indexed", 0.5)
        indexed_at_stop = await index_count(settings)
        search_node.stop()
        down_at = time.monotonic()
        enriched_at_stop = await topic_size(settings, settings.topic_enriched)
        await publish(settings, second)  # the rest of the replay arrives during the outage
        while time.monotonic() - down_at < 60:
            assert worker.alive(), "the worker exited while the search node was down\n" + (
                worker.tail()
            )
            await asyncio.sleep(2)
        enriched_during = await topic_size(settings, settings.topic_enriched) - enriched_at_stop
        # The story table lives in the engine (issue 18): the enrich agent waits too, saying
        # so, and holds its offsets (the records of a batch it had finished go on).
        assert "enrich.story_table_unavailable" in worker.log_file.read_text(errors="replace")
        restart_s = search_node.start()
        back_at = time.monotonic()

        await wait_indexed(
            settings, worker, len(sent), 600, "every article to be indexed after the outage", 1
        )
        recover_s = time.monotonic() - back_at
        assert worker.alive(), worker.tail()
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        log_text = worker.log_file.read_text(errors="replace")
        check_exactly_once(
            "search-down-60s", sent, ids, count,
            indexed_before_outage=indexed_at_stop, enriched_during_outage=enriched_during,
            outage_s=round(back_at - down_at - restart_s, 1), node_restart_s=round(restart_s, 1),
            recover_s=round(recover_s, 1), sink_retry_lines=log_text.count("sink.retry"),
        )  # fmt: skip
        assert "worker.fail_stop" not in log_text
    finally:
        worker.stop()


async def test_worker_started_while_search_engine_down_waits_then_catches_up(
    fault_settings: Settings,
    search_node: SearchNodeControl,
    tmp_path: Path,
    worker_process: Any,
    make_articles: Any,
    publish: Any,
    wait_for: Any,
    wait_indexed: Any,
    index_count: Any,
    topic_size: Any,
    indexed_ids: Any,
    check_exactly_once: Any,
) -> None:
    settings = fault_settings
    sent = make_articles("late", 120, seed=10)
    # Setup ran once (it puts the index templates and the first generation; workers no
    # longer do): the worker then starts while the engine is down.
    await run_setup(settings)
    search_node.stop()
    down_at = time.monotonic()
    worker = worker_process(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, sent)

        # The sink waits for the engine, and so does the enrich agent: the story table
        # lives in the engine (issue 18). Neither exits, neither acknowledges anything.
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert worker.alive(), worker.tail()
        assert await topic_size(settings, settings.topic_enriched) == 0
        waiting_log = worker.log_file.read_text(errors="replace")
        assert "enrich.story_table_unavailable" in waiting_log, waiting_log[-4000:]
        assert "Traceback" not in waiting_log, waiting_log[-4000:]
        restart_s = search_node.start()
        back_at = time.monotonic()

        await wait_indexed(
            settings,
            worker,
            len(sent),
            300,
            "every article to be indexed once the engine runs",
            1.0,
        )
        recover_s = time.monotonic() - back_at
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        log_text = worker.log_file.read_text(errors="replace")
        check_exactly_once(
            "started-while-search-down", sent, ids, count,
            outage_s=round(back_at - down_at - restart_s, 1), node_restart_s=round(restart_s, 1),
            recover_s=round(recover_s, 1),
            wait_log_lines=log_text.count("enrich.story_table_unavailable"),
        )  # fmt: skip
        # The enrich agent waited (the sink had nothing to write until it went on).
        assert "enrich.story_table_unavailable" in log_text
        assert "worker.fail_stop" not in log_text
    finally:
        worker.stop()


async def test_sigterm_mid_ingest_exits_0_and_the_next_worker_completes_exactly_once(
    fault_settings: Settings,
    tmp_path: Path,
    worker_process: Any,
    make_articles: Any,
    publish: Any,
    wait_indexed: Any,
    index_count: Any,
    indexed_ids: Any,
    check_exactly_once: Any,
) -> None:
    settings = fault_settings
    sent = make_articles("sigterm", 300, seed=11)
    await run_setup(settings)
    worker = worker_process(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, sent)

        await wait_indexed(settings, worker, 60, 300, "a fifth of the articles to be indexed", 0.5)
        assert worker.process is not None
        signalled = time.monotonic()
        worker.process.terminate()
        code = worker.process.wait(120)
        stop_s = time.monotonic() - signalled
        at_stop = await index_count(settings)
        assert code == 0, worker.tail()
        first_log = worker.log_file.read_text(errors="replace")
        assert "worker.fail_stop" not in first_log
        assert "worker.stopped" in first_log

        restarted = time.monotonic()
        worker.start()  # the next worker picks up what the first handed back

        await wait_indexed(
            settings, worker, len(sent), 400, "every article to be indexed by the next worker", 1.0
        )
        recover_s = time.monotonic() - restarted
        ids = await indexed_ids(settings)
        count = await index_count(settings)
        assert count is not None
        check_exactly_once(
            "sigterm-mid-ingest", sent, ids, count, exit_code=code, indexed_at_sigterm=at_stop,
            batches_handed_back=first_log.count("batch_handed_back"),
            stop_s=round(stop_s, 1), recover_s=round(recover_s, 1),
        )  # fmt: skip
    finally:
        worker.stop()

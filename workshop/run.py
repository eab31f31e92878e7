"""``newswire run``: the main job, as one supervised foreground process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import structlog
from rich.console import Console

from pipeline.endpoints import resolve
from pipeline.errors import SearchBackendError
from pipeline.settings import Settings

log = structlog.get_logger(__name__)
STOP_TIMEOUT = 30.0


def _needs_local_stack(settings: Settings) -> bool:
    return not settings.kafka_bootstrap or not (
        settings.elasticsearch_url or settings.opensearch_url
    )


def _spawn(name: str, args: list[str], logs: Path) -> tuple[subprocess.Popen[bytes], Path]:
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{name}.log"
    handle = log_file.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NEWSWIRE_LOG_FORMAT": "json"},
    )
    handle.close()
    return process, log_file


def _has_feeds(settings: Settings) -> bool:
    """Whether the feed list exists and has an enabled feed (bad entries are the poller's
    to report)."""
    from pipeline.sources.feeds import load_feeds

    if not settings.feeds_file.is_file():
        return False
    return bool(load_feeds(settings.feeds_file).enabled)


def _terminate(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("run.kill", process=name, after_seconds=STOP_TIMEOUT)
        process.kill()
        process.wait()


def _count_indexed(settings: Settings, ids: list[str]) -> int:
    """How many of ``ids`` the index holds (searchable now)."""
    from pipeline.sinks.engines import open_backend

    async def count() -> int:
        backend = open_backend(settings)
        try:
            return await backend.count(settings.index_alias, {"query": {"ids": {"values": ids}}})
        except SearchBackendError as exc:
            log.warning("run.count_failed", error=str(exc))  # a hiccup: ask again next time
            return -1
        finally:
            await backend.close()

    return asyncio.run(count())


SEARCH_HINT = (
    'Try:  newswire search "Kerry Lavrov"  |  newswire search --facet person --facet topic  '
    '|  newswire search "Kerry" --json'
)
RESTARTS = 5


def run_all(settings: Settings, *, console: Console, keep_stack: bool = False) -> int:
    """Stack (if needed), setup, worker, poller, seed replay; runs until Ctrl-C or SIGTERM."""
    from pipeline.provision import run_setup
    from pipeline.sources.replay import replay
    from pipeline.worker.failstop import FAIL_STOP_EXIT

    stack = None
    started_stack = False
    children: dict[str, subprocess.Popen[bytes]] = {}
    commands: dict[str, list[str]] = {}
    logs = settings.home / "logs"
    stop = False
    code = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    try:
        if _needs_local_stack(settings):
            from workshop.stack import LocalStack

            console.print("[bold]starting the local stack[/bold] (no cluster configured)")
            stack = LocalStack(settings, progress=lambda line: console.print(f"[dim]{line}[/dim]"))
            # Stop on exit only what this run started, never a stack the user had up.
            started_stack = not stack.status().healthy
            stack.up()  # Ctrl-C here interrupts it (KeyboardInterrupt) and cleans up below
            # Its endpoints file now names what runs: the settings of this run take them.
            settings = resolve(settings)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        report = asyncio.run(run_setup(settings))
        if report.index is not None:
            console.print(
                f"index [bold]{report.index.alias}[/bold] ready on {report.index.engine} "
                f"{report.index.version} ({report.index.variant} analysis)"
            )
        commands["worker"] = ["worker"]
        commands["poller"] = ["poll"]
        if not _has_feeds(settings):
            console.print(
                f"no feeds in {settings.feeds_file} yet: the poller waits for them "
                "(add feeds there, or `newswire feeds import FILE.opml`)"
            )
        for name, args in commands.items():
            children[name], log_file = _spawn(name, args, logs)
            console.print(f"{name} started (pid {children[name].pid}), log: {log_file}")
        seeds = [settings.seeds_dir] if settings.seeds_dir.exists() else []
        published = 0
        ids: list[str] = []
        if seeds:
            result = asyncio.run(replay(seeds, settings, console=console))
            published, ids = result.articles, result.ids
            for error in result.errors:
                console.print(f"[red]skipped[/red] {error}")
        console.print(f"replayed {published} seed article(s) from {settings.seeds_dir}")
        deadline = time.monotonic() + 240
        shown = published == 0
        if shown:
            console.print(SEARCH_HINT)
        restarts = 0
        while not stop:
            for name, process in children.items():
                if process.poll() is None:
                    continue
                log_file = logs / f"{name}.log"
                if process.returncode == FAIL_STOP_EXIT and restarts < RESTARTS:
                    restarts += 1
                    console.print(
                        f"[yellow]{name} stopped on an error[/yellow] (see {log_file}); "
                        f"restarting it ({restarts}/{RESTARTS}), nothing is lost"
                    )
                    children[name], _ = _spawn(name, commands[name], logs)
                else:
                    console.print(
                        f"[red]{name} exited with code {process.returncode}[/red]; see {log_file}"
                    )
                    stop, code = True, 1
            if not shown and _count_indexed(settings, ids) >= len(set(ids)):
                shown = True
                console.print(f"[green]seeds indexed.[/green] {SEARCH_HINT}")
            elif not shown and time.monotonic() > deadline:
                shown = True
                console.print(
                    f"[yellow]the seeds are not searchable yet[/yellow] (see "
                    f"{logs / 'worker.log'}). {SEARCH_HINT}"
                )
            time.sleep(1.0)
    finally:
        for name, process in children.items():
            _terminate(process, name)
        if stack is not None and started_stack and not keep_stack:
            console.print("stopping the local stack")
            stack.down()
    return code

"""The poller's process pool: feed parsing and full-text extraction run there, off the
event loop, so one slow or hostile document never stalls the other feeds."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from pipeline.errors import BadInputError
from pipeline.sources.parse import ParsedFeed, parse_feed_safely


def parse_pool(workers: int = 0) -> Executor:
    """A process pool of ``workers`` processes (0: one per CPU), started by a forkserver
    that has the parser imported already (spawn where there is no forkserver)."""
    workers = workers or os.cpu_count() or 2
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(["pipeline.sources.parse"])
        return ProcessPoolExecutor(max_workers=workers, mp_context=forkserver)
    spawn = multiprocessing.get_context("spawn")  # pragma: no cover - no forkserver
    return ProcessPoolExecutor(max_workers=workers, mp_context=spawn)


def parse_job(content: bytes, kwargs: dict[str, Any]) -> ParsedFeed | BadInputError:
    """Parse a feed in a pool process; the error comes back as a value (it pickles)."""
    return parse_feed_safely(content, **kwargs)


__all__ = ["parse_job", "parse_pool"]

"""Poison records: a batch that keeps failing is split until the failing record is alone.

Before this, an unexpected error in a batch stopped the worker (fail-stop, exit 70) and the
same batch came back on restart: one record that makes enrichment raise held its partition
in a crash loop. :func:`isolate` runs the batch's work; when it raises an unexpected error
``retries`` more times, the batch is cut in halves, each half run on its own, and so on
down to single records. A record that fails alone is a poison record: returned with its
traceback (for the DLQ); every other record's result is returned in order. Errors that
mean "wait" or "stop" (``passthrough``: the recogniser or Kafka away, a stop request) are
never taken for poison and go up unchanged. Pure: the work is a callable; no Kafka here.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Work = Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT]]]


@dataclass
class Isolated(Generic[ItemT, ResultT]):
    """The results of the records that went through (in input order) and the poison ones."""

    done: list[tuple[ItemT, ResultT]] = field(default_factory=list)
    poison: list[tuple[ItemT, str]] = field(default_factory=list)
    #: Calls of the work function it took (1 when the batch went through at once).
    calls: int = 0


def describe(exc: BaseException) -> str:
    """The error and its traceback, as the DLQ record's reason carries it."""
    return "".join(traceback.format_exception(exc)).strip()


async def isolate(
    items: Sequence[ItemT],
    work: Work[ItemT, ResultT],
    *,
    retries: int = 1,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Isolated[ItemT, ResultT]:
    """Run ``work`` on ``items``; on an unexpected error, retry the whole batch ``retries``
    times, then bisect until each failing record is isolated (see the module's text).

    ``work`` returns one result per item, in order. Each part of the bisection is tried
    once, so a batch of n records with one poison record costs about 2 log2(n) calls more.
    """
    out: Isolated[ItemT, ResultT] = Isolated()
    if not items:
        return out
    last: BaseException | None = None
    for _attempt in range(retries + 1):
        try:
            out.calls += 1
            results = await work(items)
        except passthrough:
            raise
        except Exception as exc:
            last = exc
            continue
        out.done.extend(zip(items, _checked(results, len(items)), strict=True))
        return out
    assert last is not None
    log.warning(
        "worker.batch_failing",
        records=len(items),
        tries=retries + 1,
        error=f"{type(last).__name__}: {last}",
        action="splitting the batch to isolate the failing records",
    )
    await _bisect(items, work, passthrough, out, last)
    return out


async def _bisect(
    items: Sequence[ItemT],
    work: Work[ItemT, ResultT],
    passthrough: tuple[type[BaseException], ...],
    out: Isolated[ItemT, ResultT],
    error: BaseException,
) -> None:
    """``items`` are known to fail together (with ``error``): split and try each half."""
    if len(items) == 1:
        out.poison.append((items[0], describe(error)))
        return
    middle = len(items) // 2
    for part in (items[:middle], items[middle:]):
        try:
            out.calls += 1
            results = await work(part)
        except passthrough:
            raise
        except Exception as exc:
            await _bisect(part, work, passthrough, out, exc)
            continue
        out.done.extend(zip(part, _checked(results, len(part)), strict=True))


def _checked(results: Sequence[ResultT], expected: int) -> Sequence[ResultT]:
    if len(results) != expected:
        raise ValueError(f"the batch's work returned {len(results)} results for {expected}")
    return results


__all__ = ["Isolated", "describe", "isolate"]

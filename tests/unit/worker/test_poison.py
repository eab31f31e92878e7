"""Poison records: a failing batch is bisected until the failing record is isolated."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pipeline.errors import RetryableError
from pipeline.worker.poison import isolate


class Enrich:
    """Doubles numbers; raises on the poison ones (and on the first ``flaky`` calls)."""

    def __init__(self, poison: set[int], flaky: int = 0) -> None:
        self.poison = poison
        self.flaky = flaky
        self.calls: list[list[int]] = []

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        if self.flaky:
            self.flaky -= 1
            raise OSError("flaky")
        bad = self.poison & set(items)
        if bad:
            raise ValueError(f"cannot enrich {sorted(bad)}")
        return [2 * n for n in items]


async def test_a_healthy_batch_is_one_call() -> None:
    work = Enrich(set())
    out = await isolate(list(range(8)), work)
    assert out.done == [(n, 2 * n) for n in range(8)] and out.poison == [] and out.calls == 1


async def test_one_poison_record_is_isolated_and_the_rest_go_on_in_order() -> None:
    work = Enrich({5})
    out = await isolate(list(range(64)), work, retries=2)
    assert [item for item, _ in out.poison] == [5]
    assert "ValueError: cannot enrich [5]" in out.poison[0][1]
    assert "Traceback" in out.poison[0][1]
    assert out.done == [(n, 2 * n) for n in range(64) if n != 5]
    # 3 tries of the whole batch, then about 2 calls per level of the bisection.
    assert out.calls <= 3 + 2 * 6


async def test_several_poison_records() -> None:
    work = Enrich({0, 7, 8})
    out = await isolate(list(range(16)), work, retries=0)
    assert sorted(item for item, _ in out.poison) == [0, 7, 8]
    assert [item for item, _ in out.done] == [n for n in range(16) if n not in {0, 7, 8}]


async def test_a_transient_failure_is_retried_before_any_split() -> None:
    work = Enrich(set(), flaky=1)
    out = await isolate(list(range(4)), work, retries=1)
    assert out.poison == [] and out.calls == 2 and work.calls == [[0, 1, 2, 3]] * 2


async def test_waiting_errors_are_never_taken_for_poison() -> None:
    async def unavailable(items: Sequence[int]) -> list[int]:
        raise RetryableError("recogniser away")

    with pytest.raises(RetryableError):
        await isolate([1, 2, 3], unavailable, passthrough=(RetryableError,))


async def test_a_short_answer_is_a_bug_not_poison() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return [1]

    with pytest.raises(ValueError, match="returned 1 results for 2"):
        await isolate([1, 2], short)

"""How the story table's restart budget is shared over the stories topic's partitions."""

from __future__ import annotations

import random

from pipeline.kafka.compacted import share_budget


def test_even_when_every_partition_has_enough() -> None:
    assert share_budget([100, 100, 100, 100], 40) == [10, 10, 10, 10]


def test_small_partitions_give_their_unused_share_to_the_big_ones() -> None:
    # four old partitions hold the window, four just added are nearly empty
    take = share_budget([1000, 1000, 1000, 1000, 5, 0, 3, 2], 800)
    assert take[4:] == [5, 0, 3, 2]  # the new partitions: all they have
    assert sum(take) == 800  # the old ones: the rest (an even split loaded only 410)
    assert max(take[:4]) - min(take[:4]) <= 1


def test_never_more_than_a_partition_has_nor_than_the_budget() -> None:
    rng = random.Random(7)
    for _ in range(500):
        available = [rng.randrange(0, 50) for _ in range(rng.randrange(1, 9))]
        budget = rng.randrange(0, 300)
        take = share_budget(available, budget)
        assert all(0 <= t <= a for t, a in zip(take, available, strict=True))
        assert sum(take) == min(budget, sum(available))
        # fair: a partition gets less than another only when it has nothing more to give
        for i, t in enumerate(take):
            if t < available[i]:
                assert all(t >= other - 1 for other in take)


def test_empty_and_zero() -> None:
    assert share_budget([], 10) == []
    assert share_budget([5, 5], 0) == [0, 0]
    assert share_budget([5, 5], 3) in ([2, 1], [1, 2])

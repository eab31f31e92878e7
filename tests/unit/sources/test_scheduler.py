"""The heap scheduler: due order, per-host limit and gap, Retry-After, first-poll spread."""

from __future__ import annotations

import random
import statistics

from pipeline.sources.scheduler import Scheduler, first_due, spread


def keys(starts: list) -> list[str]:  # type: ignore[type-arg]
    return [s.key for s in starts]


def test_due_order_and_nothing_early() -> None:
    s = Scheduler(per_host=10)
    s.schedule("b", "h1", 20.0)
    s.schedule("a", "h2", 10.0)
    s.schedule("c", "h3", 30.0)
    assert s.ready(5.0, 10) == []
    assert s.next_wake(5.0) == 10.0
    assert keys(s.ready(25.0, 10)) == ["a", "b"]
    assert [x.due for x in s.ready(30.0, 10)] == [30.0]
    assert s.next_wake(30.0) is None


def test_reschedule_and_remove_leave_no_ghosts() -> None:
    s = Scheduler(per_host=10)
    s.schedule("a", "h", 10.0)
    s.schedule("a", "h", 50.0)  # moved later: the entry at 10 is stale
    s.schedule("b", "h", 10.0)
    s.remove("b")
    assert s.ready(20.0, 10) == []
    assert keys(s.ready(60.0, 10)) == ["a"]
    assert len(s) == 0


def test_per_host_limit_and_finished_frees_a_place() -> None:
    s = Scheduler(per_host=2)
    for i in range(5):
        s.schedule(f"k{i}", "busy.test", float(i))
    s.schedule("other", "calm.test", 4.0)
    first = s.ready(10.0, 100)
    assert sorted(keys(first)) == ["k0", "k1", "other"]
    assert s.ready(11.0, 100) == []
    assert s.waiting() == 3
    s.finished("busy.test", 12.0)
    assert keys(s.ready(12.0, 100)) == ["k2"]
    assert s.max_in_flight_per_host == 2


def test_minimum_gap_between_request_starts() -> None:
    s = Scheduler(per_host=5, host_gap=5.0)
    for i in range(3):
        s.schedule(f"k{i}", "h", 0.0)
    assert keys(s.ready(0.0, 10)) == ["k0"]
    assert s.ready(4.9, 10) == []
    assert s.next_wake(4.9) == 5.0
    assert keys(s.ready(5.0, 10)) == ["k1"]
    assert keys(s.ready(10.0, 10)) == ["k2"]


def test_retry_after_holds_the_host() -> None:
    s = Scheduler(per_host=2)
    s.schedule("a", "h", 0.0)
    s.schedule("b", "h", 0.0)
    s.schedule("c", "h", 0.0)
    assert keys(s.ready(0.0, 1)) == ["a"]  # the budget (global limit) stops at one
    s.hold_host("h", 120.0)  # a's answer was 429 Retry-After: 120
    s.finished("h", 1.0)
    assert s.ready(60.0, 10) == []
    assert keys(s.ready(120.0, 10)) == ["b", "c"]


def test_removed_while_waiting_is_not_started() -> None:
    s = Scheduler(per_host=1)
    s.schedule("a", "h", 0.0)
    s.schedule("b", "h", 0.0)
    assert keys(s.ready(0.0, 10)) == ["a"]
    s.remove("b")
    s.finished("h", 1.0)
    assert s.ready(1.0, 10) == []


def test_first_polls_spread_over_the_interval() -> None:
    due = [first_due(f"feed-{i}", 1000.0, 300.0) for i in range(20_000)]
    assert min(due) >= 1000.0 and max(due) < 1300.0
    per_bucket = [0] * 10
    for d in due:
        per_bucket[int((d - 1000.0) / 30.0)] += 1
    assert min(per_bucket) > 1800 and max(per_bucket) < 2200  # ~2,000 each
    assert spread("feed-1") == spread("feed-1")


def test_many_feeds_many_hosts_all_started_in_due_order_per_host() -> None:
    rng = random.Random(3)
    s = Scheduler(per_host=2, host_gap=1.0)
    due = {f"k{i}": rng.uniform(0, 100) for i in range(5000)}
    for k, d in due.items():
        s.schedule(k, f"h{int(k[1:]) % 50}", d)
    started: list[tuple[float, str, float]] = []
    now = 0.0
    in_flight: list[tuple[float, str]] = []
    while len(started) < 5000:
        now += 0.5
        for end, host in [x for x in in_flight if x[0] <= now]:
            s.finished(host, now)
            in_flight.remove((end, host))
        for st in s.ready(now, 64):
            started.append((now, st.key, st.due))
            in_flight.append((now + 0.7, st.host))
        assert s.max_in_flight_per_host <= 2
    assert {k for _, k, _ in started} == set(due)
    lags = [t - d for t, _, d in started]
    assert min(lags) >= 0
    assert statistics.quantiles(lags, n=100)[98] < 60.0

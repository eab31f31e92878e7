"""Digest windows defined by alerts-topic offsets: the same digest after a restart."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from pipeline.alerts.digests import DigestBook, DigestState, Item
from pipeline.alerts.webhooks import payload

TP = TopicPartition("alerts", 0)


def _item(offset: int, at: float, key: str | None = None, tp: TopicPartition = TP) -> Item:
    record: dict[str, Any] = {
        "alert": "a", "idempotency_key": key or f"k{offset}", "matched_at": at,
        "article": {"id": key or f"k{offset}"},
    }  # fmt: skip
    return (tp, offset, record)


def test_a_window_is_due_its_length_after_its_first_match_once_read_to_the_end() -> None:
    book = DigestBook()
    for offset, at in ((3, 100.0), (5, 101.0), (9, 105.0)):
        assert book.take("a", _item(offset, at))
    assert book.due("a", 10, 109.0, {TP: 109.0}) == []  # not yet 110
    assert book.due("a", 10, 111.0, {TP: 109.0}) == []  # not read to the end since 110
    chosen = book.due("a", 10, 111.0, {TP: 110.5})
    assert [offset for _, offset, _ in chosen] == [3, 5, 9]
    assert book.pending["a"] == []


def test_a_window_never_read_to_the_end_is_sent_later_anyway() -> None:
    book = DigestBook()
    book.take("a", _item(1, 100.0))
    assert book.due("a", 10, 139.0, {}) == []
    assert len(book.due("a", 10, 141.0, {})) == 1


def test_delivered_matches_read_again_are_skipped() -> None:
    book = DigestBook()
    items = [_item(o, 100.0) for o in (1, 2, 3)]
    for item in items:
        book.take("a", item)
    chosen = book.due("a", 5, 200.0, {TP: 200.0})
    sending = book.start_sending("a", chosen, "key")
    assert DigestState.decode("a", sending.encode()).sending == {
        "key": "key", "through": {"0": 3}, "count": 3,
    }  # fmt: skip
    state = book.finish("a", chosen)
    restarted = DigestBook({"a": DigestState.decode("a", state.encode())})
    assert not restarted.take("a", _item(2, 100.0))
    assert not restarted.take("a", _item(3, 100.0))
    assert restarted.take("a", _item(4, 150.0))


def test_a_digest_interrupted_while_sent_is_sent_again_exactly() -> None:
    book = DigestBook()
    first = [_item(o, 100.0 + o) for o in (1, 2, 4)]
    for item in first:
        book.take("a", item)
    chosen = book.due("a", 5, 200.0, {TP: 200.0})
    key = payload([r for _, _, r in chosen], digest=True)[1]
    state = book.start_sending("a", chosen, key)
    # restart: the three matches and a later one are read again; the window is over
    restarted = DigestBook({"a": DigestState.decode("a", state.encode())})
    restarted.take("a", first[0])
    restarted.take("a", first[1])
    assert restarted.due("a", 5, 300.0, {TP: 300.0}) == []  # offset 4 not read yet
    restarted.take("a", first[2])
    restarted.take("a", _item(7, 299.0))
    again = restarted.due("a", 5, 300.0, {TP: 300.0})
    assert [offset for _, offset, _ in again] == [1, 2, 4]
    assert payload([r for _, _, r in again], digest=True)[1] == key
    restarted.finish("a", again)
    assert restarted.due("a", 5, 303.0, {TP: 303.0}) == []  # 299 + 5
    assert [o for _, o, _ in restarted.due("a", 5, 305.0, {TP: 305.0})] == [7]


def test_a_sending_digest_already_committed_does_not_block_the_next() -> None:
    state = DigestState("a", {0: 1}, {"key": "k", "through": {"0": 4}, "count": 3})
    book = DigestBook({"a": state})
    book.take("a", _item(9, 100.0))
    assert [o for _, o, _ in book.due("a", 5, 106.0, {TP: 106.0})] == [9]


def test_a_digest_holds_each_match_once() -> None:
    body, _ = payload([_item(1, 1, "x")[2], _item(2, 1, "x")[2], _item(3, 1, "y")[2]], digest=True)
    assert b'"count":2' in body
    one, _ = payload([_item(1, 1, "x")[2]], digest=True)
    assert b'"digest"' in one and b'"count":1' in one


def test_a_window_over_the_limit_is_sent_in_parts_at_once() -> None:
    book = DigestBook()
    for offset in range(5):
        book.take("a", _item(offset, 100.0))
    first = book.due("a", 3600, 101.0, {TP: 101.0}, limit=2)
    assert [o for _, o, _ in first] == [0, 1]
    assert [o for _, o, _ in book.due("a", 3600, 101.0, {TP: 101.0}, limit=2)] == [2, 3]
    assert book.due("a", 3600, 101.0, {TP: 101.0}, limit=2) == []  # one left: its window

"""The pure parts of the paged DLQ listing: cursors and the read plan."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.worker.dlq import decode_cursor, encode_cursor, page_plan


def test_dlq_cursor_round_trip_and_page_plan() -> None:
    assert decode_cursor(encode_cursor({1: 40, 0: 12})) == {0: 12, 1: 40}
    assert encode_cursor({1: 40, 0: 12}) == "0:12,1:40"
    with pytest.raises(ConfigError):
        decode_cursor("0:x")
    # Partitions in order, skipping the ones already read to their end.
    assert page_plan({0: 10, 1: 0}, {0: 10, 1: 30, 2: 5}, 50) == [(1, 0, 30), (2, 0, 5)]
    assert page_plan({}, {0: 100, 1: 100}, 20) == [(0, 0, 100)]

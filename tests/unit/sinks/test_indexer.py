"""Indexer retry and DLQ logic against an in-memory stand-in for the search engine."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.errors import RetryableError
from pipeline.models import EnrichedArticle
from pipeline.sinks.indexer import Indexer


class ScriptedBackend:
    """Answers bulk requests from a script: an exception to raise, or per-id statuses."""

    engine = "fake"
    url = "memory://"

    def __init__(self, script: list[Exception | dict[str, int]]) -> None:
        self.script = deque(script)
        self.requests: list[list[str]] = []
        self.refresh: list[str] = []

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        """The ``ids`` lookup across generations: nothing is indexed yet."""
        return {"hits": {"hits": []}}

    async def bulk(
        self, operations: list[dict[str, Any]], refresh: str = "false"
    ) -> dict[str, Any]:
        ids = [op["index"]["_id"] for op in operations[::2]]
        self.requests.append(ids)
        self.refresh.append(refresh)
        step = self.script.popleft()
        if isinstance(step, Exception):
            raise step
        items = []
        for doc_id in ids:
            status = step.get(doc_id, 201)
            error = None if status < 300 else {"type": f"error_{status}", "reason": "scripted"}
            items.append({"index": {"_id": doc_id, "status": status, "error": error}})
        return {"items": items}


def _article(doc_id: str, hour: int = 0) -> EnrichedArticle:
    return EnrichedArticle(
        id=doc_id, title=doc_id, fetched_at=datetime(2020, 1, 1, hour, tzinfo=UTC)
    )


def _indexer(backend: ScriptedBackend) -> Indexer:
    return Indexer(backend, "alias", backoff_base=0.001, backoff_cap=0.002, escalate_after=2)  # type: ignore[arg-type]


async def test_unreachable_engine_is_retried_until_it_answers() -> None:
    backend = ScriptedBackend([RetryableError("down"), RetryableError("down"), {}])
    result = await _indexer(backend).write([_article("a"), _article("b")])
    assert sorted(result.indexed) == ["a", "b"] and result.retries == 2
    assert len(backend.requests) == 3


async def test_only_failed_items_are_resent_and_rejections_are_returned() -> None:
    backend = ScriptedBackend([{"a": 429, "b": 400, "c": 403}, {"c": 503}, {}])
    result = await _indexer(backend).write([_article("a"), _article("b"), _article("c")])
    assert backend.requests == [["a", "b", "c"], ["a", "c"], ["c"]]
    assert sorted(result.indexed) == ["a", "c"]
    assert [(a.id, reason.split()[0]) for a, reason in result.rejected] == [("b", "400")]


async def test_conflicts_mean_a_newer_revision_is_indexed() -> None:
    backend = ScriptedBackend([{"a": 409}])
    result = await _indexer(backend).write([_article("a")])
    assert result.stale == ["a"] and not result.indexed and not result.rejected


async def test_latest_revision_of_an_id_in_one_batch_wins() -> None:
    backend = ScriptedBackend([{}])
    older, newer = _article("a", 1), _article("a", 5)
    await _indexer(backend).write([newer, older])
    assert backend.requests == [["a"]]


@pytest.mark.parametrize("policy", ["false", "true", "wait_for"])
async def test_every_bulk_request_carries_the_refresh_policy(policy: str) -> None:
    backend = ScriptedBackend([{"a": 503}, {}])
    indexer = Indexer(backend, "alias", backoff_base=0.001, refresh=policy)  # type: ignore[arg-type]
    await indexer.write([_article("a")])
    assert backend.refresh == [policy, policy]  # the retry too

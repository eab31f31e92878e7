from datetime import UTC, datetime

from pipeline.models import EnrichedArticle
from pipeline.sinks.bulk import (
    Outcome,
    bulk_operations,
    classify_item,
    classify_response,
    external_version,
)


def test_operations_use_deterministic_id_and_external_version() -> None:
    ops = bulk_operations("alias", [("id1", 5, {"id": "id1"})])
    assert ops[0] == {
        "index": {
            "_index": "alias",
            "_id": "id1",
            "require_alias": True,
            "version": 5,
            "version_type": "external_gte",
        }
    }
    assert ops[1] == {"id": "id1"}


def test_external_version_is_revision_time_in_ms() -> None:
    article = EnrichedArticle(id="a", fetched_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert external_version(article) == 1577836800000


def test_classification() -> None:
    def item(status: int, error: object = None) -> dict[str, object]:
        return {"index": {"_id": "x", "status": status, "error": error}}

    assert classify_item(item(201)).outcome is Outcome.INDEXED
    assert classify_item(item(409, {"type": "version_conflict_engine_exception"})).outcome is (
        Outcome.STALE
    )
    assert classify_item(item(429, {"type": "es_rejected_execution_exception"})).outcome is (
        Outcome.RETRY
    )
    assert classify_item(item(503)).outcome is Outcome.RETRY
    rejected = classify_item(
        item(400, {"type": "strict_dynamic_mapping_exception", "reason": "field [x] not allowed"})
    )
    assert rejected.outcome is Outcome.REJECTED
    assert rejected.reason is not None and "strict_dynamic_mapping_exception" in rejected.reason
    # outages are the cluster's fault, not the document's: retried, never sent to the DLQ
    for status, error in (
        (403, {"type": "cluster_block_exception", "reason": "index read-only"}),
        (404, {"type": "index_not_found_exception", "reason": "no such index [a]"}),
        (401, {"type": "security_exception"}),
        (400, {"type": "illegal_argument_exception", "reason": "no write index is defined"}),
    ):
        assert classify_item(item(status, error)).outcome is Outcome.RETRY, status
    immense = item(400, {"type": "illegal_argument_exception", "reason": "immense term"})
    assert classify_item(immense).outcome is Outcome.REJECTED


def test_classify_response_groups() -> None:
    response = {
        "items": [
            {"index": {"_id": "a", "status": 201}},
            {"index": {"_id": "b", "status": 409, "error": {"type": "conflict"}}},
            {"index": {"_id": "c", "status": 429, "error": {"type": "busy"}}},
            {"index": {"_id": "d", "status": 400, "error": {"type": "mapper_parsing_exception"}}},
        ]
    }
    report = classify_response(response)
    assert report.indexed == ["a"] and report.stale == ["b"]
    assert [r.doc_id for r in report.retry] == ["c"]
    assert [r.doc_id for r in report.rejected] == ["d"]

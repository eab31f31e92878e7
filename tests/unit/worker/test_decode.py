"""The rolling-upgrade rule: records read from Kafka with fields this version does not know
are processed without them (never dead-lettered); everything else is validated as before."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.models import EnrichedArticle, RawArticle, Source, drop_unknown_fields
from pipeline.worker.decode import decode_batch, decode_record


def newer_raw() -> dict[str, Any]:
    """A raw record as a newer poller might write it."""
    return {
        **RawArticle(id="a1", title="T", body="B", source=Source(name="S")).model_dump(mode="json"),
        "paywall": True,
        "source": {"name": "S", "domain": None, "feed_url": None, "region": "eu"},
    }


def newer_enriched() -> dict[str, Any]:
    article = EnrichedArticle.model_validate(
        {
            "id": "e1",
            "title": "Ann Lee in Paris",
            "language": "en",
            "entities": {"person": ["Ann Lee"]},
            "topics": [{"code": "01000000", "label": "arts", "score": 0.5}],
            "mentions": [
                {"type": "person", "text": "Ann Lee", "canonical": "Ann Lee", "field": "title",
                 "start": 0, "end": 7}
            ],
        }
    )  # fmt: skip
    data = article.model_dump(mode="json")
    data["sentiment"] = {"score": 0.1}
    data["entities"]["event"] = ["Paris Fashion Week"]
    data["topics"][0]["confidence"] = "high"
    data["mentions"][0]["salience"] = 0.9
    return data


def test_unknown_fields_are_dropped_at_every_depth_and_named() -> None:
    record, unknown = decode_record(json.dumps(newer_raw()).encode(), RawArticle)
    assert record.id == "a1" and record.source.name == "S"
    assert sorted(unknown) == ["paywall", "source.region"]

    enriched, unknown = decode_record(json.dumps(newer_enriched()).encode(), EnrichedArticle)
    assert sorted(unknown) == [
        "entities.event",
        "mentions[0].salience",
        "sentiment",
        "topics[0].confidence",
    ]
    assert enriched.entities.person == ["Ann Lee"] and enriched.topics[0].label == "arts"
    # What goes to the strict index mapping has only the fields this version knows.
    document = enriched.document()
    assert "sentiment" not in document and "event" not in document["entities"]
    assert "confidence" not in document["topics"][0]


def test_a_known_record_has_no_unknown_fields() -> None:
    value = RawArticle(id="x", title="T").model_dump_json().encode()
    assert decode_record(value, RawArticle)[1] == []


@pytest.mark.parametrize(
    "value",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"title": "no id", "paywall": True}).encode(),
        json.dumps({"id": "a", "published_at": "yesterday-ish"}).encode(),
        json.dumps({"id": "a", "source": "not an object"}).encode(),
    ],
    ids=["not-json", "not-utf8", "not-object", "missing-id", "bad-date", "bad-source"],
)
def test_everything_else_is_still_refused(value: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_record(value, RawArticle)


def test_decode_sends_only_invalid_records_to_the_dlq() -> None:
    values = [
        (json.dumps(newer_raw()).encode(), {"key": "newer"}),
        (b"{broken", {"key": "broken"}),
    ]
    decoded, dead = decode_batch(values, RawArticle, "enrich")
    assert [record.id for record, _, _ in decoded] == ["a1"]
    assert [d["key"] for d in dead] == ["broken"]


def test_models_stay_strict_when_built_in_code() -> None:
    with pytest.raises(ValidationError):
        RawArticle.model_validate({"id": "a", "paywall": True})


def test_drop_unknown_fields_leaves_non_mappings_for_validation() -> None:
    assert drop_unknown_fields(RawArticle, [1]) == ([1], [])
    assert drop_unknown_fields(RawArticle, {"id": "a", "tags": ["x"]}) == (
        {"id": "a", "tags": ["x"]},
        [],
    )

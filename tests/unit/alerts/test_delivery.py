"""Webhook payloads, signatures, answer classes, and the delivery offset tracker."""

from aiokafka import TopicPartition

from pipeline.alerts.delivery import OffsetTracker
from pipeline.alerts.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    classify,
    headers,
    payload,
    sign,
    verify,
)


def _record(key: str) -> dict[str, object]:
    return {"alert": "a", "idempotency_key": key, "article": {"id": key}}


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body, key = payload([_record("k1")])
    sent = headers("a", "s3cret", body, key)
    assert sent[IDEMPOTENCY_HEADER] == "k1"
    assert verify("s3cret", body, sent[SIGNATURE_HEADER])
    assert not verify("other", body, sent[SIGNATURE_HEADER])
    assert not verify("s3cret", body + b" ", sent[SIGNATURE_HEADER])
    assert sign("s", b"x").startswith("sha256=")


def test_digest_key_depends_on_its_matches_not_their_order() -> None:
    body, key = payload([_record("k1"), _record("k2")])
    assert b'"count":2' in body
    assert key == payload([_record("k2"), _record("k1")])[1]
    assert key != payload([_record("k1"), _record("k3")])[1]


def test_answers_are_classified() -> None:
    assert classify(204).ok
    assert classify(500).retry and classify(503, retry_after="7").retry_after == 7.0
    assert classify(429).retry and classify(None, "ConnectionRefused").retry
    gone = classify(404)
    assert not gone.ok and not gone.retry and "404" in gone.reason


def test_offsets_commit_below_the_lowest_in_flight() -> None:
    tracker = OffsetTracker()
    tp = TopicPartition("t", 0)
    for offset in (5, 6, 7):
        tracker.add(tp, offset)
    tracker.done(tp, 6)
    assert tracker.committable() == {tp: 5}
    tracker.done(tp, 5)
    assert tracker.committable() == {tp: 7}
    tracker.done(tp, 7)
    assert tracker.committable() == {tp: 8}

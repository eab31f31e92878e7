"""Webhook requests for alert deliveries: payload, signature, and what an answer means.

Pure: the delivery loop (:mod:`pipeline.alerts.delivery`) does the I/O. A receiver checks
``X-Newswire-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes with the
alert's secret, and drops repeats by ``X-Newswire-Idempotency-Key`` (a record delivered
twice, after a retry or a redelivery, carries the same key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-Newswire-Signature"
IDEMPOTENCY_HEADER = "X-Newswire-Idempotency-Key"
ALERT_HEADER = "X-Newswire-Alert"
#: Answers worth another try: timeouts and rate limits; every 5xx too.
_RETRY_4XX = frozenset({408, 409, 425, 429})


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str) -> bool:
    """True when ``header`` is the signature of ``body`` (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), header)


def payload(records: Sequence[Mapping[str, Any]], *, digest: bool = False) -> tuple[bytes, str]:
    """The JSON body and idempotency key for one match (``{"match": ...}``) or a digest
    (``{"digest": [...], "count"}``, also for several records; each match once, by its
    idempotency key, as a redelivered batch records a match twice; the digest's key is
    derived from its matches' keys, so the same digest sent again has the same key)."""
    if len(records) == 1 and not digest:
        data: dict[str, Any] = {"alert": records[0]["alert"], "match": records[0]}
        key = str(records[0]["idempotency_key"])
    else:
        unique = list({str(r["idempotency_key"]): r for r in reversed(records)}.values())[::-1]
        data = {"alert": records[0]["alert"], "digest": unique, "count": len(unique)}
        joined = "\x1f".join(sorted(str(r["idempotency_key"]) for r in unique))
        key = hashlib.sha256(joined.encode()).hexdigest()[:32]
    body = json.dumps(data, separators=(",", ":"), sort_keys=True, default=str).encode()
    return body, key


def headers(alert: str, secret: str, body: bytes, key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        IDEMPOTENCY_HEADER: key,
        ALERT_HEADER: alert,
    }


@dataclass(frozen=True)
class Outcome:
    """What one try's answer means: done, retry (after ``retry_after`` if given), or give up."""

    ok: bool
    retry: bool
    reason: str
    retry_after: float | None = None


def classify(
    status: int | None, error: str | None = None, retry_after: str | None = None
) -> Outcome:
    """``status`` None means no answer (``error``: refused, timed out, unsafe...)."""
    if status is None:
        return Outcome(False, True, error or "no answer")
    if 200 <= status < 300:
        return Outcome(True, False, f"HTTP {status}")
    wait = None
    if retry_after is not None:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = None
    if status >= 500 or status in _RETRY_4XX:
        return Outcome(False, True, f"HTTP {status}", wait)
    return Outcome(False, False, f"HTTP {status} (not retried)")


__all__ = [
    "ALERT_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "Outcome",
    "classify",
    "headers",
    "payload",
    "sign",
    "verify",
]

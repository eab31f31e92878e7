"""Pure bulk-indexing logic: actions with external versions, and item outcome classes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from pipeline.models import EnrichedArticle

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Statuses that say the cluster or our access to it is broken, not the document:
#: unauthorised, forbidden (read-only blocks, disk full), index or alias missing.
OUTAGE_STATUSES = frozenset({401, 403, 404})
#: 400s that are about the index, not the document.
OUTAGE_REASONS = ("no write index", "cluster_block_exception", "index_closed_exception")


class Outcome(Enum):
    """What happened to one document of a bulk request."""

    INDEXED = "indexed"
    STALE = "stale"  # 409: the index already holds a newer revision
    RETRY = "retry"  # 429, 5xx, timeouts, outages (401/403/404): send again, never drop
    REJECTED = "rejected"  # mapping and other permanent errors: to the DLQ


def external_version(article: EnrichedArticle) -> int:
    """The document version: the revision time of the raw article, in epoch milliseconds.

    With ``external_gte`` a redelivery of the same revision overwrites it harmlessly (so a
    re-enrichment by a newer pipeline lands), and an older revision is refused with 409, so
    it never overwrites newer content.
    """
    stamp: datetime = article.fetched_at
    return int(stamp.timestamp() * 1000)


def bulk_operations(
    alias: str,
    docs: list[tuple[str, int, dict[str, Any]]],
    placed: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Bulk body lines: ``index`` with deterministic ``_id`` and external versioning.

    A document some generation already holds (``placed``: id -> concrete index) is written
    to that index, so its revisions stay in one place (external versions hold per index);
    the others go to the alias, that is its write index. ``require_alias`` makes a missing
    alias an item error (retried) instead of letting the engine auto-create a concrete
    index with a dynamic mapping under the alias's name.
    """
    placed = placed or {}
    operations: list[dict[str, Any]] = []
    for doc_id, version, source in docs:
        target = placed.get(doc_id)
        action: dict[str, Any] = {
            "_index": target or alias,
            "_id": doc_id,
            "version": version,
            "version_type": "external_gte",
        }
        if target is None:
            action["require_alias"] = True
        operations.append({"index": action})
        operations.append(source)
    return operations


@dataclass
class ItemResult:
    """The outcome of one bulk item, with the reason for anything but success."""

    doc_id: str
    outcome: Outcome
    status: int
    reason: str | None = None
    index: str | None = None  # the concrete index that answered


def _reason(error: Any) -> str:
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    return str(error)


def classify_item(item: dict[str, Any]) -> ItemResult:
    """Classify one entry of a bulk response's ``items``."""
    ((_op, body),) = item.items()
    status = int(body.get("status", 0))
    doc_id = str(body.get("_id"))
    if 200 <= status < 300:
        return ItemResult(doc_id, Outcome.INDEXED, status, index=body.get("_index"))
    reason = _reason(body.get("error"))
    if status == 409:
        return ItemResult(doc_id, Outcome.STALE, status, reason)
    if status in RETRYABLE_STATUSES or status in OUTAGE_STATUSES or status == 0:
        return ItemResult(doc_id, Outcome.RETRY, status, reason)
    if any(marker in reason for marker in OUTAGE_REASONS):
        return ItemResult(doc_id, Outcome.RETRY, status, reason)
    return ItemResult(doc_id, Outcome.REJECTED, status, reason)


@dataclass
class BulkReport:
    """Outcomes of a bulk request, grouped."""

    indexed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    retry: list[ItemResult] = field(default_factory=list)
    #: Where each indexed document was written (id -> concrete index).
    written_to: dict[str, str] = field(default_factory=dict)
    rejected: list[ItemResult] = field(default_factory=list)


def classify_response(response: dict[str, Any]) -> BulkReport:
    """Group a bulk response's items by outcome."""
    report = BulkReport()
    for item in response.get("items", []):
        result = classify_item(item)
        if result.outcome is Outcome.INDEXED:
            report.indexed.append(result.doc_id)
            if result.index:
                report.written_to[result.doc_id] = result.index
        elif result.outcome is Outcome.STALE:
            report.stale.append(result.doc_id)
        elif result.outcome is Outcome.RETRY:
            report.retry.append(result)
        else:
            report.rejected.append(result)
    return report

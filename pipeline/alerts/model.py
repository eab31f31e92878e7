"""Standing queries and their alert records (docs/architecture.md "Standing queries").

An :class:`Alert` is kept in the compacted alerts-queries topic, keyed by its name (a
tombstone removes it). A match is one record on the alerts topic (:func:`match_record`).
Both are checked here, before anything is written: the query by the search parser, the
filters by the search facets, the webhook URL by the feeds' SSRF guard.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ConfigError, FetchError
from pipeline.models import utcnow
from pipeline.search.query import FACETS, parse_duration, parse_filter
from pipeline.search.syntax import parse_query
from pipeline.sources.safety import check_url

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The facet fields a match record reports (``why.facets``).
FACET_FIELDS = tuple(dict.fromkeys(FACETS.values()))


class Alert(BaseModel):
    """A standing query: a search query, facet filters, and where its matches go."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    query: str = ""
    filters: tuple[str, ...] = ()
    webhook: str | None = None
    digest_seconds: int | None = None
    secret: str = Field(default_factory=lambda: secrets.token_hex(32), repr=False)
    created_at: datetime = Field(default_factory=utcnow)

    def public(self) -> dict[str, Any]:
        """What ``alerts list/show --json`` print (no secret)."""
        return self.model_dump(mode="json", exclude={"secret"})


def new_alert(
    name: str,
    query: str,
    filters: Sequence[str] = (),
    *,
    webhook: str | None = None,
    digest: str | None = None,
    allow_private: bool = False,
) -> Alert:
    """A checked alert: raises QuerySyntaxError (with the position) for a bad query and
    ConfigError for a bad name, filter, digest or webhook URL (refused by the SSRF guard
    unless private targets are allowed, as for feeds)."""
    if not NAME_RE.match(name):
        raise ConfigError(
            f"alert name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    parse_query(query)
    normalised = tuple(f"{field}={value}" for field, value in (parse_filter(f) for f in filters))
    if not query.strip() and not normalised:
        raise ConfigError("an alert needs a query or at least one filter")
    if webhook is not None:
        try:
            check_url(webhook, allow_private=allow_private)
        except FetchError as exc:
            raise ConfigError(f"webhook URL refused: {exc.reason}") from exc
    seconds = parse_duration(digest) if digest else None
    return Alert(
        name=name, query=query, filters=normalised, webhook=webhook, digest_seconds=seconds
    )


def field_values(document: Mapping[str, Any], dotted: str) -> list[str]:
    """The values of a (dotted) keyword field of an index document, as strings."""
    values: list[Any] = [document]
    for part in dotted.split("."):
        found: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, Mapping) and item.get(part) is not None:
                    got = item[part]
                    found.extend(got if isinstance(got, list) else [got])
        values = found
    return [str(v) for v in values if not isinstance(v, Mapping)]


def article_facets(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every facet field's values of an index document."""
    return {field: field_values(document, field) for field in FACET_FIELDS}


def idempotency_key(alert: str, article_id: str, version: str) -> str:
    """The same match (alert, article, article revision) always has the same key, so a
    record sent twice (a batch redelivered) is recognised by its receiver."""
    return hashlib.sha256(f"{alert}\x1f{article_id}\x1f{version}".encode()).hexdigest()[:32]


def match_record(
    alert: Alert,
    document: Mapping[str, Any],
    terms: Iterable[str],
    *,
    version: str,
    indexed_at: float,
) -> dict[str, Any]:
    """One record of the alerts topic: the article, the query, and why it matched (the
    query's analysed terms found in the article, the filters' facet values)."""
    facets = dict(parse_filter(x) for x in alert.filters)
    article_id = str(document.get("id"))
    return {
        "alert": alert.name,
        "query": alert.query,
        "filters": list(alert.filters),
        "article": {
            "id": article_id,
            "title": document.get("title"),
            "url": document.get("url"),
            "published_at": document.get("published_at"),
            "source": (document.get("source") or {}).get("name"),
            "cluster_id": document.get("cluster_id"),
        },
        "why": {"terms": sorted(set(terms)), "facets": facets},
        "idempotency_key": idempotency_key(alert.name, article_id, version),
        "indexed_at": indexed_at,
        "matched_at": utcnow().timestamp(),
    }


__all__ = [
    "FACET_FIELDS",
    "Alert",
    "article_facets",
    "field_values",
    "idempotency_key",
    "match_record",
    "new_alert",
    "parse_duration",
]

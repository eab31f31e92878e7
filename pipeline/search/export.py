"""``newswire export``: every matching article to JSON Lines or CSV, in constant memory.

The articles come page by page (:mod:`pipeline.search.scan`) and are written as they come;
progress goes to a callback (the CLI prints it on stderr, so stdout stays machine output).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pipeline.errors import ConfigError
from pipeline.search.scan import scan
from pipeline.sinks.backend import SearchBackend

ExportFormat = Literal["jsonl", "csv"]


class Output(Protocol):
    """Where the export goes (stdout, a file)."""

    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


#: CSV columns when ``--fields`` is not given (JSON Lines: the whole stored article).
CSV_FIELDS = (
    "id", "url", "title", "published_at", "fetched_at", "source.name", "source.domain",
    "language", "entities.person", "entities.organization", "entities.location",
    "topics.label", "cluster_id", "enrichment_version",
)  # fmt: skip
#: How list values are joined in a CSV cell.
CSV_LIST_SEPARATOR = "; "


def parse_fields(text: str | None) -> list[str] | None:
    """``--fields id,title,source.name`` -> the dotted paths (None: the default)."""
    if not text:
        return None
    fields = [part.strip() for part in text.split(",") if part.strip()]
    if not fields:
        raise ConfigError("--fields names no field")
    return fields


def pick(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; lists of objects give the list of their values
    (``topics.label`` -> every topic's label)."""
    value: Any = document
    for part in path.split("."):
        if isinstance(value, list):
            value = [item.get(part) for item in value if isinstance(item, Mapping)]
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


def csv_cell(value: Any) -> str:
    """A value as one CSV cell: lists joined, objects as JSON, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return CSV_LIST_SEPARATOR.join(csv_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def project(document: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """The document reduced to ``fields`` (dotted paths kept as keys) for JSON Lines."""
    return {path: pick(document, path) for path in fields}


@dataclass
class ExportReport:
    """How many articles were written (and how many were expected: ``_count``)."""

    written: int
    expected: int


async def export(
    backend: SearchBackend,
    index: str,
    query: dict[str, Any],
    out: Output,
    *,
    fmt: ExportFormat = "jsonl",
    fields: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    page_size: int = 1000,
) -> ExportReport:
    """Write every article matching ``query`` to ``out``; returns the counts."""
    expected = await backend.count(index, {"query": query})
    columns = list(fields or CSV_FIELDS)
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    source: bool | list[str] = True
    if fields:
        source = sorted(set(fields))
    written = 0
    async for page in scan(backend, index, query, source=source, size=page_size):
        for hit in page.hits:
            document = hit.get("_source", {})
            if writer is not None:
                writer.writerow([csv_cell(pick(document, path)) for path in columns])
            else:
                line = project(document, fields) if fields else document
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        written += len(page.hits)
        if progress is not None:
            progress(written, expected)
    out.flush()
    return ExportReport(written, expected)


__all__ = ["CSV_FIELDS", "ExportReport", "csv_cell", "export", "parse_fields", "pick", "project"]

"""``newswire enrich --jsonl``: JSON lines in, enriched JSON lines out, same order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import structlog

from pipeline.enrich.enricher import Enricher
from pipeline.errors import MissingDependencyError, RetryableError
from pipeline.models import RawArticle

log = structlog.get_logger(__name__)

TEXT_KEYS = ("title", "summary", "body")


class LineError(ValueError):
    """An input line that cannot be enriched; ``article_id`` when it could be read."""

    def __init__(self, reason: str, article_id: str | None = None) -> None:
        super().__init__(reason)
        self.article_id = article_id


def parse_line(line: str, lineno: int) -> tuple[str | None, RawArticle]:
    """One JSONL record -> (the id as given or None, a RawArticle to enrich)."""
    text = line.strip()
    if not text:
        raise LineError("empty line")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise LineError(f"expected a JSON object, got {type(data).__name__}")
    raw_id = data.get("id")
    if raw_id is not None and not isinstance(raw_id, str | int):
        raise LineError("'id' must be a string or a number")
    given_id = None if raw_id is None else str(raw_id)
    if not any(k in data for k in TEXT_KEYS):
        raise LineError("no 'title', 'summary' or 'body' field", given_id)
    for key in (*TEXT_KEYS, "language"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise LineError(f"'{key}' must be a string", given_id)
    article = RawArticle(
        id=given_id or f"line-{lineno}",
        title=data.get("title"),
        summary=data.get("summary"),
        body=data.get("body"),
        language_hint=data.get("language"),
    )
    return given_id, article


def _output(given_id: str | None, enrichment: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": given_id}
    record.update(enrichment.model_dump(mode="json"))
    return record


def enrich_jsonl(
    lines: Iterable[str],
    out: TextIO,
    batch_size: int = 32,
    enricher: Enricher | None = None,
) -> int:
    """Enrich JSONL records ``{id?, title?, summary?, body}``; returns lines written.

    Every input line gives exactly one output line, in input order. A line that cannot be
    read gives ``{"id": <id or null>, "error": "..."}``; an article whose enrichment fails
    gives the same with its id. A missing NLP model or an unreachable recogniser server is
    not a per-line problem: :class:`MissingDependencyError` / :class:`RetryableError` are
    raised. Each record names its recogniser; ``newswire enrich`` passes an ``enricher`` with
    the recogniser of :func:`~pipeline.enrich.recogniser.recogniser_for_run`.
    """
    worker = enricher or Enricher(batch_size=batch_size)
    written = 0
    for chunk in _chunks(enumerate(lines, start=1), batch_size):
        slots: list[dict[str, Any] | None] = []
        todo: list[tuple[int, str | None, RawArticle]] = []
        for lineno, line in chunk:
            try:
                given_id, article = parse_line(line, lineno)
            except LineError as exc:
                slots.append({"id": exc.article_id, "error": f"line {lineno}: {exc}"})
                log.warning("enrich.bad_line", line=lineno, reason=str(exc))
                continue
            todo.append((len(slots), given_id, article))
            slots.append(None)
        for slot, enriched in _enrich_slots(worker, todo):
            slots[slot] = enriched
        for record in slots:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    out.flush()
    return written


def _enrich_slots(
    worker: Enricher, todo: list[tuple[int, str | None, RawArticle]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    if not todo:
        return
    try:
        results = worker.enrich([a for _, _, a in todo])
    except (MissingDependencyError, RetryableError):
        raise
    except Exception:  # isolate the article that breaks the batch
        log.exception("enrich.batch_failed", size=len(todo))
        for slot, given_id, article in todo:
            try:
                yield slot, _output(given_id, worker.enrich([article])[0])
            except (MissingDependencyError, RetryableError):
                raise
            except Exception as exc:
                yield slot, {"id": given_id, "error": f"enrichment failed: {exc}"}
        return
    for (slot, given_id, _), enrichment in zip(todo, results, strict=True):
        yield slot, _output(given_id, enrichment)


def _chunks(items: Iterable[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

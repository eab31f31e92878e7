"""Seed files -> raw articles: the seed text format, plain text, JSON, JSONL, RSS/Atom."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from dateutil import parser as dateparser
from pydantic import ValidationError

from pipeline.errors import BadInputError
from pipeline.identity import article_id, canonical_url, content_id
from pipeline.models import RawArticle, Source

log = structlog.get_logger(__name__)

TEXT_SUFFIXES = {".txt", ".text", ".md", ""}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".feed"}
MAX_FILE_BYTES = 50 * 1024 * 1024
_READING_TIME = re.compile(r"^\d+\s*min(ute)?s?\s+read$", re.IGNORECASE)
_JSON_FIELDS = set(RawArticle.model_fields)


@dataclass(frozen=True)
class SeedError:
    """A file (or line of one) that could not be read, and why."""

    path: Path
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.reason}"


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, else Latin-1; NUL bytes refused."""
    if b"\x00" in data:
        raise BadInputError(source, "binary content (NUL bytes); not a text article")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    log.info("seeds.non_utf8", file=source, decoded_as="windows-1252/latin-1")
    return text


def _parse_date(text: str) -> datetime | None:
    try:
        value = dateparser.parse(text, fuzzy=False)
    except (ValueError, OverflowError):
        return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cap(text: str | None, max_chars: int, source: str) -> str | None:
    if text is not None and len(text) > max_chars:
        log.warning("seeds.body_truncated", file=source, chars=len(text), kept=max_chars)
        return text[:max_chars]
    return text


def parse_text_article(
    text: str, *, path: Path, source: Source, raw: bytes, max_chars: int
) -> RawArticle:
    """The seed text format (headline, blank, headline, standfirst, reading time, date,
    blank, body) or plain text (first line headline, the rest body)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].strip():
        raise BadInputError(str(path), "empty file: no headline")
    title = lines[0].strip()
    summary: str | None = None
    published: datetime | None = None
    rest = lines[1:]
    # The seed format repeats the headline after a blank line, then a header block.
    if len(lines) > 3 and not lines[1].strip() and lines[2].strip() == title:
        header: list[str] = []
        index = 3
        while index < len(lines) and lines[index].strip():
            header.append(lines[index].strip())
            index += 1
        for line in header:
            if _READING_TIME.match(line):
                continue
            date = _parse_date(line) if len(line) <= 40 else None
            if date is not None and published is None:
                published = date
            elif summary is None:
                summary = line
        rest = lines[index:]
    body = "\n".join(line.rstrip() for line in rest).strip()
    if not body and not summary:
        raise BadInputError(str(path), "no body text after the headline")
    return RawArticle(
        id=content_id(raw),
        title=title,
        summary=summary,
        body=_cap(body, max_chars, str(path)) or None,
        published_at=published,
        source=source,
    )


def article_from_json(
    record: Any, *, where: str, source: Source, raw: bytes, max_chars: int
) -> RawArticle:
    """A JSON object in the raw-article shape (extra keys refused, missing id derived)."""
    if not isinstance(record, dict):
        raise BadInputError(where, f"expected a JSON object, got {type(record).__name__}")
    unknown = set(record) - _JSON_FIELDS
    if unknown:
        raise BadInputError(where, f"unknown fields {sorted(unknown)}")
    data = dict(record)
    if not (data.get("title") or data.get("body") or data.get("summary")):
        raise BadInputError(where, "no title, summary or body")
    if data.get("url") and not data.get("canonical_url"):
        data["canonical_url"] = canonical_url(str(data["url"]))
    if not data.get("id"):
        data["id"] = article_id(str(data["url"])) if data.get("url") else content_id(raw)
    data.setdefault("source", source.model_dump())
    if isinstance(data.get("body"), str):
        data["body"] = _cap(data["body"], max_chars, where)
    try:
        return RawArticle.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise BadInputError(where, problems) from exc


def _kind(path: Path, head: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in FEED_SUFFIXES:
        return "feed"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:RDF")):
        return "feed"
    return "text"


def read_file(
    path: Path, source_name: str | None, max_chars: int
) -> Iterator[RawArticle | SeedError]:
    """Articles (or errors, by line where there are lines) from one seed file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            yield SeedError(path, f"file too large ({size} bytes > {MAX_FILE_BYTES})")
            return
        raw = path.read_bytes()
    except OSError as exc:
        yield SeedError(path, f"cannot read: {exc.strerror or exc}")
        return
    source = Source(name=source_name or path.resolve().parent.name or None)
    kind = _kind(path, raw[:64])
    try:
        if kind == "feed":
            from pipeline.sources.parse import parse_feed

            parsed = parse_feed(raw, feed_url=path.resolve().as_uri(), source_name=source.name)
            if not parsed.articles:
                yield SeedError(path, parsed.bozo_reason or "feed has no entries")
            yield from parsed.articles
        elif kind == "jsonl":
            text = decode_text(raw, str(path))
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    yield article_from_json(
                        record,
                        where=f"{path}:{number}",
                        source=source,
                        raw=line.encode("utf-8"),
                        max_chars=max_chars,
                    )
                except json.JSONDecodeError as exc:
                    yield SeedError(path, f"invalid JSON: {exc.msg} at column {exc.colno}", number)
                except BadInputError as exc:
                    yield SeedError(path, exc.reason, number)
        elif kind == "json":
            data = json.loads(decode_text(raw, str(path)))
            records = data if isinstance(data, list) else [data]
            for number, record in enumerate(records, start=1):
                where = f"{path}[{number - 1}]" if isinstance(data, list) else str(path)
                blob = json.dumps(record, sort_keys=True).encode("utf-8")
                try:
                    yield article_from_json(
                        record, where=where, source=source, raw=blob, max_chars=max_chars
                    )
                except BadInputError as exc:
                    yield SeedError(path, exc.reason, number if isinstance(data, list) else None)
        else:
            text = decode_text(raw, str(path))
            yield parse_text_article(text, path=path, source=source, raw=raw, max_chars=max_chars)
    except json.JSONDecodeError as exc:
        yield SeedError(path, f"invalid JSON: {exc.msg} at line {exc.lineno}")
    except BadInputError as exc:
        yield SeedError(path, exc.reason)


def discover(paths: Sequence[Path]) -> tuple[list[tuple[Path, str]], list[SeedError]]:
    """(file, source name) under ``paths``, folders walked recursively, hidden files skipped.

    The source name is the folder given on the command line (``seeds``, ``bbc-dev``), so
    sub-folders do not leak into the ``source`` facet.
    """
    files: list[tuple[Path, str]] = []
    errors: list[SeedError] = []
    for path in paths:
        if path.is_dir():
            name = path.resolve().name
            files.extend(
                (p, name)
                for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            files.append((path, path.resolve().parent.name))
        else:
            errors.append(SeedError(path, "no such file or folder"))
    return files, errors

"""The feed list: YAML or OPML in, validated :class:`FeedConfig` entries out.

A bad entry never stops the others: :func:`load_feeds` returns the good entries plus one
:class:`FeedEntryError` per bad one, naming the entry (position, name or URL) and the
problem.

YAML format (a top-level list works too)::

    defaults: {interval: 15m, tags: [news]}     # optional, applied to every entry
    feeds:
      - url: https://feeds.bbci.co.uk/news/world/rss.xml
        name: BBC World
        tags: [world, uk]
        interval: 10m           # seconds, or 30s / 10m / 2h / 1d; optional
        enabled: true
        fulltext: false         # fetch and extract the article page (trafilatura)
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import defusedxml.ElementTree as DefusedET
import structlog
import yaml
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import BadInputError, ConfigError

log = structlog.get_logger(__name__)

#: Shortest interval a feed entry may ask for (politeness floor), in seconds.
MIN_ENTRY_INTERVAL = 60.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day)?\s*$", re.IGNORECASE)
#: An http(s) URL of a plain host name or IPv4 address, an optional port and no user
#: info, whitespace or control characters: valid as is. Anything else takes the full check.
_PLAIN_URL = re.compile(
    r"(?i:https?)://[A-Za-z0-9][A-Za-z0-9.-]*(?::([0-9]{1,5}))?(?:[/?#][!-~]*)?"
)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from a number or "90", "30s", "10m", "2h", "1d"."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        unit = (match.group(2) or "s").lower()
        seconds = float(match.group(1)) * _UNITS[unit]
    else:
        raise ValueError(f"not a duration: {value!r} (use seconds or 30s / 10m / 2h / 1d)")
    return seconds


def feed_key(url: str) -> str:
    """A stable key for a feed (Kafka record key of its state and assignment)."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:32]


class FeedConfig(BaseModel):
    """One feed of the list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()
    interval: float | None = Field(None, description="seconds between polls; None = adaptive")
    enabled: bool = True
    fulltext: bool = False

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("url is missing")
        url = value.strip()
        plain = _PLAIN_URL.fullmatch(url)
        if plain and (not plain.group(1) or int(plain.group(1)) <= 65535):
            return url  # the common shape, checked without urlsplit (200,000 at a load)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"url {url!r} is not http or https")
        if not parts.hostname:
            raise ValueError(f"url {url!r} has no host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"url {url!r} has a bad port") from exc
        return url

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        return text or None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            raise ValueError("tags must be a list of strings")
        tags: list[str] = []
        for tag in value:
            if not isinstance(tag, str | int | float) or isinstance(tag, bool):
                raise ValueError(f"tag {tag!r} is not a string")
            text = str(tag).strip().strip("/").strip()
            if text and text not in tags:
                tags.append(text)
        return tuple(tags)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds < MIN_ENTRY_INTERVAL:
            raise ValueError(f"interval {seconds:g}s is below the {MIN_ENTRY_INTERVAL:g}s minimum")
        return seconds

    @cached_property
    def key(self) -> str:
        """Computed once per entry (a SHA-256), not at every use."""
        return feed_key(self.url)

    @cached_property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def label(self) -> str:
        return self.name or self.url

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        if self.name:
            out["name"] = self.name
        if self.tags:
            out["tags"] = list(self.tags)
        if self.interval is not None:
            out["interval"] = int(self.interval) if self.interval.is_integer() else self.interval
        if not self.enabled:
            out["enabled"] = False
        if self.fulltext:
            out["fulltext"] = True
        return out


@dataclass(frozen=True, slots=True)
class FeedEntryError:
    """A feed list entry that could not be used, and why."""

    index: int
    entry: str
    problem: str

    def __str__(self) -> str:
        return f"feed #{self.index + 1} ({self.entry}): {self.problem}"


@dataclass(slots=True)
class FeedList:
    """The usable entries of a feed list plus the errors of the unusable ones."""

    feeds: list[FeedConfig] = field(default_factory=list)
    errors: list[FeedEntryError] = field(default_factory=list)
    path: Path | None = None

    @property
    def enabled(self) -> list[FeedConfig]:
        return [f for f in self.feeds if f.enabled]

    def __iter__(self) -> Any:
        return iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)


def _describe(raw: Any) -> str:
    if isinstance(raw, Mapping):
        for key in ("name", "url", "title", "text", "xmlUrl"):
            value = raw.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:120]
    if isinstance(raw, str):
        return raw[:120]
    return type(raw).__name__


def _problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def build_feed_list(
    raw_entries: Sequence[Any], defaults: Mapping[str, Any] | None = None
) -> FeedList:
    """Validate raw entries (dicts, or bare URL strings); duplicates of a URL are errors."""
    result = FeedList()
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        label = _describe(raw)
        if isinstance(raw, str):
            raw = {"url": raw}
        if not isinstance(raw, Mapping):
            result.errors.append(FeedEntryError(index, label, "entry is not a mapping or URL"))
            continue
        data = {**(defaults or {}), **raw}
        if defaults and "tags" in defaults and "tags" in raw:
            data["tags"] = [*_as_list(defaults["tags"]), *_as_list(raw["tags"])]
        try:
            config = FeedConfig.model_validate(data)
        except ValidationError as exc:
            result.errors.append(FeedEntryError(index, label, _problem(exc)))
            continue
        if config.url in seen:
            result.errors.append(
                FeedEntryError(index, label, f"duplicate of feed #{seen[config.url] + 1}")
            )
            continue
        seen[config.url] = index
        result.feeds.append(config)
    return result


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(",")
    return list(value) if isinstance(value, list | tuple) else [value]


def parse_yaml_feeds(text: str, *, source: str = "feeds.yaml") -> FeedList:
    """A feed list from YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    defaults: Mapping[str, Any] | None = None
    if document is None:
        entries: list[Any] = []
    elif isinstance(document, list):
        entries = document
    elif isinstance(document, Mapping):
        unknown = set(document) - {"feeds", "defaults"}
        if unknown:
            raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
        entries = document.get("feeds") or []
        defaults = document.get("defaults")
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: 'feeds' must be a list")
        if defaults is not None and not isinstance(defaults, Mapping):
            raise ConfigError(f"{source}: 'defaults' must be a mapping")
    else:
        raise ConfigError(f"{source}: expected a list of feeds or a mapping with 'feeds'")
    return build_feed_list(entries, defaults)


# --------------------------------------------------------------------------------------
# OPML
# --------------------------------------------------------------------------------------


def parse_opml(content: bytes | str, *, source: str = "feeds.opml") -> FeedList:
    """A feed list from OPML: every ``outline`` with an ``xmlUrl``; enclosing outlines and
    the ``category`` attribute become tags."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        root = DefusedET.fromstring(data)  # refuses entity declarations and external DTDs
    except DefusedXmlException as exc:
        raise BadInputError(source, f"unsafe XML: {exc}") from exc
    except ET.ParseError as exc:
        raise ConfigError(f"{source}: not valid OPML: {exc}") from exc
    if root.tag.lower() != "opml":
        raise ConfigError(f"{source}: not OPML (root element <{root.tag}>)")
    body = root.find("body")
    if body is None:
        raise ConfigError(f"{source}: OPML without <body>")
    raw: list[dict[str, Any]] = []

    def walk(element: ET.Element, folders: list[str]) -> None:
        for outline in element.findall("outline"):
            attrs = {k.split("}")[-1]: v for k, v in outline.attrib.items()}
            label = attrs.get("title") or attrs.get("text")
            url = attrs.get("xmlUrl") or attrs.get("xmlurl")
            if url is not None or attrs.get("type", "").lower() in ("rss", "atom"):
                entry: dict[str, Any] = {"url": url or "", "name": label}
                tags = list(folders)
                for category in (attrs.get("category") or "").split(","):
                    tags.extend(c for c in category.strip().split("/") if c.strip())
                entry["tags"] = tags
                for key in ("interval", "enabled", "fulltext"):
                    if key in attrs:
                        value: Any = attrs[key]
                        if key != "interval":
                            value = value.strip().lower() in ("1", "true", "yes", "on")
                        entry[key] = value
                raw.append(entry)
                walk(outline, folders)
            else:
                walk(outline, [*folders, label] if label else folders)

    walk(body, [])
    return build_feed_list(raw)


def to_opml(feeds: Iterable[FeedConfig], *, title: str = "Newswire feeds") -> str:
    """OPML 2.0 for the feeds; non-standard attributes keep interval/enabled/fulltext."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_xml_text(title)}</title></head>",
        "  <body>",
    ]
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.label, "title": feed.label, "xmlUrl": feed.url}
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        if feed.interval is not None:
            attrs["interval"] = f"{feed.interval:g}"
        if not feed.enabled:
            attrs["enabled"] = "false"
        if feed.fulltext:
            attrs["fulltext"] = "true"
        rendered = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        lines.append(f"    <outline {rendered}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_yaml(feeds: Iterable[FeedConfig]) -> str:
    """The YAML feed list for the feeds."""
    return yaml.safe_dump(
        {"feeds": [f.to_yaml_dict() for f in feeds]}, sort_keys=False, allow_unicode=True
    )


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _is_opml(path: Path, content: bytes) -> bool:
    if path.suffix.lower() in (".opml", ".xml"):
        return True
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    return head.startswith(b"<") and b"<opml" in content[:4096].lower()


def load_feeds(path: str | Path) -> FeedList:
    """Load a YAML or OPML feed list (chosen by suffix, else by content).

    Raises :class:`ConfigError` when the file itself is unusable (missing, not YAML/OPML);
    bad entries are reported in ``FeedList.errors``.
    """
    file = Path(path)
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read feed list {file}: {exc.strerror or exc}") from exc
    try:
        if _is_opml(file, content):
            result = parse_opml(content, source=str(file))
        else:
            result = parse_yaml_feeds(content.decode("utf-8-sig"), source=str(file))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8: {exc}") from exc
    except BadInputError as exc:
        raise ConfigError(str(exc)) from exc
    result.path = file
    return result


def load_feeds_logged(path: str | Path) -> FeedList:
    """:func:`load_feeds`, with each invalid entry logged as an error."""
    feeds = load_feeds(path)
    for error in feeds.errors:
        log.error("feeds.invalid_entry", file=str(path), error=str(error))
    return feeds


def save_feeds(path: str | Path, feeds: Iterable[FeedConfig]) -> None:
    """Write a feed list, as OPML if the suffix says so, else YAML (atomically)."""
    file = Path(path)
    feeds = list(feeds)
    text = to_opml(feeds) if file.suffix.lower() in (".opml", ".xml") else to_yaml(feeds)
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(file)


@dataclass(slots=True)
class ImportResult:
    added: list[FeedConfig]
    skipped: list[FeedConfig]
    errors: list[FeedEntryError]


def import_opml(opml_path: str | Path, feeds_file: str | Path) -> ImportResult:
    """Merge the feeds of an OPML file into the feed list file (created if missing);
    URLs already listed are skipped, entries already there are kept as they are."""
    incoming = load_feeds(opml_path)
    target = Path(feeds_file)
    existing = load_feeds(target) if target.exists() else FeedList()
    if existing.errors:
        raise ConfigError(
            f"{target} has invalid entries; fix them before importing: "
            + "; ".join(str(e) for e in existing.errors)
        )
    known = {f.url for f in existing.feeds}
    added = [f for f in incoming.feeds if f.url not in known]
    skipped = [f for f in incoming.feeds if f.url in known]
    if added or not target.exists():
        save_feeds(target, [*existing.feeds, *added])
    return ImportResult(added=added, skipped=skipped, errors=incoming.errors)


# --------------------------------------------------------------------------------------
# Export (`newswire feeds export`)
# --------------------------------------------------------------------------------------


def feeds_export_command(feeds_file: Path, fmt: str = "opml", output: Path | None = None) -> int:
    """``newswire feeds export [--format opml|yaml] [-o FILE]``: to stdout unless -o."""
    import sys

    feeds = load_feeds(feeds_file)
    if fmt not in ("opml", "yaml"):
        raise ConfigError(f"unknown export format {fmt!r}: use opml or yaml")
    text = to_opml(feeds.feeds) if fmt == "opml" else to_yaml(feeds.feeds)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    for error in feeds.errors:
        sys.stderr.write(f"invalid: {error}\n")
    return 1 if feeds.errors else 0


__all__ = [
    "FeedConfig",
    "FeedEntryError",
    "FeedList",
    "ImportResult",
    "build_feed_list",
    "feed_key",
    "feeds_export_command",
    "import_opml",
    "load_feeds",
    "load_feeds_logged",
    "parse_duration",
    "parse_opml",
    "parse_yaml_feeds",
    "save_feeds",
    "to_opml",
    "to_yaml",
]

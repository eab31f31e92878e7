"""Feed bytes -> raw articles: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 (feedparser) and JSON Feed.

Everything here is pure and synchronous (no I/O), so the poller can run it in a process
pool, off the event loop, and the seed replayer can call it directly.

Safety: feedparser parses with expat through ``xml.sax`` with external general entities
switched off, and strips "unsafe" ENTITY declarations with a regular expression before
parsing. That regular expression only sees declarations that start a line, so
:func:`check_xml_safety` refuses, before feedparser sees the bytes, any document whose
DOCTYPE declares external, parameter or nested (expanding) entities (read by expat up to
the root element): billion laughs and XXE never reach a parser.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.parsers import expat

import feedparser

from pipeline.errors import BadInputError
from pipeline.identity import article_id, canonical_url, digest_id
from pipeline.models import RawArticle, Source, utcnow
from pipeline.sources.encoding import expat_input, to_utf8

#: Largest feed document parsed (the poller enforces its own, configurable, limit first).
MAX_FEED_BYTES = 10 * 1024 * 1024
#: ENTITY declarations allowed in an internal DTD subset (all must be plain text values).
MAX_ENTITY_DECLARATIONS = 64

_UPDATE_PERIODS = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 30 * 86400,
    "yearly": 365 * 86400,
}

# --------------------------------------------------------------------------------------
# HTML -> text
# --------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
        "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "body", "html",
    }
)  # fmt: skip
_SKIP_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "object", "embed", "svg",
        "math", "head", "canvas", "video", "audio", "select", "button", "textarea",
    }
)  # fmt: skip
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr", "param"}
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_LOOKS_LIKE_HTML = re.compile(
    r"</?(?:p|br|div|span|a|img|strong|em|b|i|ul|ol|li|h[1-6]|blockquote|figure)\b[^<>]*>",
    re.IGNORECASE,
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._pieces: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0

    def _flush(self) -> None:
        if not self._pieces:
            return
        text = "".join(self._pieces)
        self._pieces = []
        lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
        joined = "\n".join(line for line in lines if line)
        if joined:
            self.paragraphs.append(joined)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS and tag not in _VOID_TAGS:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        # An image's alt text is not article text: <img> adds nothing.
        self._break(tag)
        if tag == "pre":
            self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skip_depth:
            self._break(tag)

    def _break(self, tag: str) -> None:
        """A line break for <br>, a paragraph break before a block element."""
        if tag == "br":
            self._pieces.append("\n")
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and tag not in _VOID_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in _BLOCK_TAGS:
            if tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self._pieces.append(data)
        else:
            self._pieces.append(data.replace("\n", " "))

    def text(self) -> str:
        self._flush()
        return "\n\n".join(self.paragraphs)


def html_to_text(html_text: str) -> str:
    """Clean text from an HTML fragment: no tags, scripts or styles, entities decoded,
    whitespace collapsed, paragraphs (block elements) separated by one blank line and
    ``<br>`` kept as a line break."""
    if not html_text:
        return ""
    if "<" not in html_text and "&" not in html_text:
        # No markup and no entities: what the HTML parser would give, without it.
        return _SPACES.sub(" ", _INVISIBLE.sub("", html_text).replace("\n", " ")).strip()
    text = _run_extractor(html_text)
    # Escaped HTML inside HTML ("&lt;p&gt;...") shows up as tags after one pass.
    if _LOOKS_LIKE_HTML.search(text):
        text = _run_extractor(text)
    return text


def _run_extractor(html_text: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(_INVISIBLE.sub("", html_text))
        parser.close()
    except (AssertionError, ValueError):  # malformed markup HTMLParser gives up on
        return plain_text(re.sub(r"<[^>]*>", " ", html.unescape(html_text)))
    return parser.text()


def plain_text(text: str) -> str:
    """Whitespace-normalised plain text, blank lines kept as paragraph breaks."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        joined = "\n".join(line for line in lines if line)
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def _content_text(value: str | None, content_type: str | None) -> str:
    if not value:
        return ""
    if content_type and content_type.lower() == "text/plain":
        return plain_text(value)
    return html_to_text(value)


# --------------------------------------------------------------------------------------
# XML safety
# --------------------------------------------------------------------------------------

_ENTITY_REF = re.compile(r"[&%](?!#)[^\s;&%]+;")


class _RootReachedError(Exception):
    """The root element starts: the DTD, if any, is behind us."""


def check_xml_safety(content: bytes, *, source: str) -> None:
    """Refuse documents whose DTD declares external, parameter or expanding entities.

    Raises :class:`BadInputError` naming ``source``; plain-text entities such as
    ``<!ENTITY nbsp "&#160;">`` stay allowed. Expat reads the prolog (so comments,
    processing instructions and quoting are read as XML, however long) and stops at the
    root element. A prolog expat cannot read is left to the feed parser, whose strict
    parser fails on it too and whose loose parser expands no DTD.
    """
    declared = 0

    def on_entity(
        name: str,
        is_parameter: bool,
        value: str | None,
        base: str | None,
        system_id: str | None,
        public_id: str | None,
        notation: str | None,
    ) -> None:
        nonlocal declared
        declared += 1
        if declared > MAX_ENTITY_DECLARATIONS:
            raise BadInputError(source, f"unsafe XML: over {MAX_ENTITY_DECLARATIONS} entities")
        if is_parameter:
            raise BadInputError(source, f"unsafe XML: parameter entity {name!r}")
        if system_id or public_id or notation:
            raise BadInputError(source, f"unsafe XML: external entity {name!r}")
        if value and _ENTITY_REF.search(value):
            raise BadInputError(source, f"unsafe XML: entity {name!r} expands other entities")

    def on_root(*_: object) -> None:
        raise _RootReachedError

    # UTF-16/32 documents are read as the UTF-8 they decode to (:mod:`.encoding`);
    # byte-oriented ones as Latin-1 (ASCII markup is all that matters here). The
    # override wins over any declared encoding, which expat could not always load.
    text, override = expat_input(content)
    parser = expat.ParserCreate(override)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = on_entity
    parser.StartElementHandler = on_root
    try:
        parser.Parse(text, True)
    except (_RootReachedError, expat.ExpatError, ValueError, LookupError):
        return


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedFeed:
    """A parsed feed: its articles and what the feed says about itself."""

    articles: list[RawArticle]
    title: str | None = None
    link: str | None = None
    language: str | None = None
    version: str = ""
    bozo_reason: str | None = None
    encoding: str | None = None
    #: RSS ``<ttl>``, in seconds.
    ttl_seconds: float | None = None
    #: ``sy:updatePeriod`` / ``sy:updateFrequency``, in seconds between updates.
    update_period_seconds: float | None = None
    entry_count: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def min_interval_hint(self) -> float | None:
        """The longest "do not poll more often than" the feed itself declares."""
        hints = [h for h in (self.ttl_seconds, self.update_period_seconds) if h]
        return max(hints) if hints else None


# --------------------------------------------------------------------------------------
# Entry -> article (pure, unit-testable with plain dicts)
# --------------------------------------------------------------------------------------


def struct_to_datetime(value: Any) -> datetime | None:
    """A feedparser ``*_parsed`` value (a UTC ``time.struct_time``) as an aware datetime."""
    if value is None:
        return None
    try:
        stamp = calendar.timegm((*tuple(value)[:6], 0, 0, 0))
        return datetime.fromtimestamp(stamp, UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_iso_datetime(value: Any) -> datetime | None:
    """An RFC 3339 / ISO-8601 string as a UTC datetime; naive values are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        struct = feedparser.datetimes._parse_date(value)
        return struct_to_datetime(struct)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_MONTHS: dict[str, int] = {}
for _number_, _names in enumerate(
    [
        "jan janv janvier januar janeiro enero gen gennaio янв января",
        "feb fev fév févr février februar fevereiro febrero febbraio фев февраля",
        "mar mär mrz mars märz março marzo мар марта",
        "apr abr avr avril april abril aprile апр апреля",
        "may mai mayo maio mag maggio мая май",
        "jun juin juni junho junio giu giugno июн июня",
        "jul juil juillet juli julho julio lug luglio июл июля",
        "aug ago août august agosto авг августа",
        "sep set sept septembre september setembro septiembre settembre сен сентября",
        "oct okt out ott octobre oktober outubro octubre ottobre окт октября",
        "nov novembre november novembro noviembre ноя ноября",
        "dec dez déc dic décembre dezember dezembro diciembre dicembre дек декабря",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number_
_LOCALIZED_DATE = re.compile(
    r"(?P<day>\d{1,2})\.?\s+(?P<month>[^\W\d_]+)\.?,?\s+(?P<year>\d{4}),?\s+"
    r"(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\s*(?P<tz>[+-]\d{2}:?\d{2}|[A-Za-z]{1,5})?"
)
_TZ_NAMES = {"gmt": 0, "utc": 0, "ut": 0, "z": 0, "cet": 60, "cest": 120, "brt": -180}


def parse_localized_date(value: Any) -> datetime | None:
    """RFC 822-like dates with non-English names ("Seg, 24 Set 2018 19:42:40 -0300"),
    which feedparser leaves unparsed; unknown zone names count as UTC."""
    if not isinstance(value, str):
        return None
    match = _LOCALIZED_DATE.search(value)
    if not match:
        return None
    month = _MONTHS.get(match.group("month").lower())
    if month is None:
        return None
    tz = (match.group("tz") or "").lower()
    if tz[:1] in "+-" and tz:
        digits = tz[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:])) * (1 if tz[0] == "+" else -1)
    else:
        offset = _TZ_NAMES.get(tz, 0)
    try:
        local = datetime(
            int(match.group("year")), month, int(match.group("day")), int(match.group("h")),
            int(match.group("m")), int(match.group("s") or 0), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None
    return local - timedelta(minutes=offset)


def _http_url(value: Any, base: str | None = None) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    url = value.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        cleaned = _SPACES.sub(" ", value).strip()
        key = cleaned.casefold()
        if cleaned and key not in seen:
            seen.add(key)
            out.append(cleaned)
    return out


def _first_strings(items: Any, *keys: str) -> list[str]:
    """From each mapping of ``items``: the first of ``keys`` with a value, if a string."""
    out: list[str] = []
    for item in items or []:
        if isinstance(item, Mapping):
            value = None
            for key in keys:
                value = item.get(key)
                if value:
                    break
            if isinstance(value, str):
                out.append(value)
    return out


def _authors(entry: Mapping[str, Any]) -> list[str]:
    names = _first_strings(entry.get("authors"), "name", "email")
    if not names and isinstance(entry.get("author"), str):
        names.append(entry["author"])
    # "By Jane Doe and John Roe" style bylines stay whole: splitting names is NLP's job.
    return _dedupe(html_to_text(n) if "<" in n or "&" in n else n for n in names)


def _categories(entry: Mapping[str, Any]) -> list[str]:
    return _first_strings(entry.get("tags"), "term", "label")


def _guid(entry: Mapping[str, Any]) -> str | None:
    guid = entry.get("id") or entry.get("guid")
    return guid.strip() if isinstance(guid, str) and guid.strip() else None


def _truncate(text: str, limit: int | None) -> str:
    if limit is not None and len(text) > limit:
        return text[:limit].rstrip()
    return text


def _raw(entry: Mapping[str, Any], key: str) -> Any:
    # FeedParserDict.get maps "published" to "updated" with a DeprecationWarning; read
    # the plain dict so the fallback order stays ours.
    if isinstance(entry, dict):
        return dict.get(entry, key)
    return entry.get(key)


def entry_to_article(
    entry: Mapping[str, Any],
    *,
    feed_url: str,
    source: Source,
    tags: Sequence[str] = (),
    language: str | None = None,
    fetched_at: datetime | None = None,
    max_body_chars: int | None = None,
    base_url: str | None = None,
) -> RawArticle:
    """One feedparser entry (or a dict with the same keys) as a raw article.

    Relative links resolve against ``base_url`` (see :func:`link_base`), ``feed_url``
    when it is not given."""
    base = feed_url if base_url is None else base_url
    guid = _guid(entry)
    url = _http_url(entry.get("link"), base)
    if url is None and guid and entry.get("guidislink", True):
        url = _http_url(guid)
    if url is None:
        for link in entry.get("links") or []:
            if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate":
                url = _http_url(link.get("href"), base)
                if url:
                    break

    title_detail = entry.get("title_detail") or {}
    title = _content_text(entry.get("title"), title_detail.get("type")) or None
    if title:
        title = title.replace("\n\n", " ").replace("\n", " ")

    summary_detail = entry.get("summary_detail") or {}
    summary = _content_text(entry.get("summary"), summary_detail.get("type"))
    body = ""
    for content in entry.get("content") or []:
        if isinstance(content, Mapping) and content.get("value"):
            text = _content_text(content.get("value"), content.get("type"))
            if len(text) > len(body):
                body = text
    if summary and body and summary == body:
        # feedparser copies content into summary when there is no description.
        summary = body.split("\n\n", 1)[0]

    published = (
        struct_to_datetime(_raw(entry, "published_parsed"))
        or parse_localized_date(_raw(entry, "published"))
        or struct_to_datetime(_raw(entry, "updated_parsed"))
        or parse_localized_date(_raw(entry, "updated"))
    )

    if url is not None:
        ident = article_id(url)
    elif guid is not None:
        ident = article_id(None, feed_url=feed_url, guid=guid)
    else:
        fallback = "\x00".join(
            [title or "", summary, body, published.isoformat() if published else ""]
        )
        ident = digest_id(feed_url, "content:" + hashlib.sha256(fallback.encode()).hexdigest())

    entry_language = entry.get("language")
    return RawArticle(
        id=ident,
        url=url,
        canonical_url=canonical_url(url) if url else None,
        title=title,
        summary=_truncate(summary, max_body_chars) or None,
        body=_truncate(body, max_body_chars) or None,
        authors=_authors(entry),
        published_at=published,
        fetched_at=fetched_at or utcnow(),
        source=source,
        tags=_dedupe([*tags, *_categories(entry)]),
        language_hint=(entry_language if isinstance(entry_language, str) else None) or language,
    )


# --------------------------------------------------------------------------------------
# Feed documents
# --------------------------------------------------------------------------------------

_XML_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"'][^\"']+[\"']", re.I)


def _self_described(content: bytes) -> bool:
    """A BOM or an XML declaration naming the encoding: the document knows its charset."""
    if content.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    return bool(_XML_DECL_ENCODING.match(content[:512]))


def _charset(headers: Mapping[str, str]) -> str | None:
    ctype = headers.get("content-type", "")
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", ctype, re.I)
    return match.group(1) if match else None


def _lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def _source_for(
    feed_url: str, source_name: str | None, title: str | None, link: str | None
) -> Source:
    site = _http_url(link) or feed_url
    host = (urlsplit(site).hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    return Source(name=source_name or title or host or None, domain=host or None, feed_url=feed_url)


def link_base(feed_url: str, site_link: str | None) -> str | None:
    """What relative entry links resolve against when the feed has no ``xml:base``: the
    feed's own URL when it was fetched over HTTP(S); else (a feed replayed from a file,
    ``file://...``) the feed's site link (RSS channel ``<link>``, Atom alternate link,
    JSON Feed ``home_page_url``) when that is an absolute HTTP(S) URL; else nothing, and
    such links are dropped (the entry is then identified by its GUID)."""
    if _http_url(feed_url) is not None:
        return feed_url
    return _http_url(site_link)


def _number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _update_period(feed: Mapping[str, Any]) -> float | None:
    period = feed.get("sy_updateperiod")
    if not isinstance(period, str) or period.strip().lower() not in _UPDATE_PERIODS:
        return None
    seconds = float(_UPDATE_PERIODS[period.strip().lower()])
    # feedparser keeps the element's own name; DW really spells it "updateFequency".
    frequency = _number(feed.get("sy_updatefrequency") or feed.get("sy_updatefequency")) or 1.0
    return seconds / frequency


def _to_articles(
    entries: Sequence[Any], label: str, **common: Any
) -> tuple[list[RawArticle], list[str]]:
    """One article per entry; entries that cannot be one (``None``: not an object) are
    listed with why, and the rest go on."""
    articles: list[RawArticle] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        if entry is None:
            skipped.append(f"{label} {index}: not an object")
            continue
        try:
            articles.append(entry_to_article(entry, **common))
        except (ValueError, TypeError) as exc:  # pydantic ValidationError is a ValueError
            skipped.append(f"{label} {index}: {exc}")
    return articles, skipped


def parse_feed(
    content: bytes,
    *,
    feed_url: str,
    source_name: str | None = None,
    tags: Sequence[str] = (),
    response_headers: Mapping[str, str] | None = None,
    max_bytes: int = MAX_FEED_BYTES,
    max_body_chars: int | None = None,
    fetched_at: datetime | None = None,
) -> ParsedFeed:
    """Parse a feed document into raw articles, one per entry.

    ``feed_url`` resolves relative links and identifies entries without a link.
    Raises :class:`BadInputError` for content that is not a feed, is too large or
    declares unsafe XML entities.
    """
    if not content or not content.strip():
        raise BadInputError(feed_url, "empty document")
    if len(content) > max_bytes:
        raise BadInputError(feed_url, f"document of {len(content)} bytes exceeds {max_bytes}")
    fetched = fetched_at or utcnow()
    headers = _lower_headers(response_headers)
    decoded = to_utf8(content)  # UTF-16/32 -> UTF-8, so the rest reads it like UTF-8
    content = decoded.content
    stripped = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"{", b"[")):
        return _parse_json_feed(
            content, feed_url=feed_url, source_name=source_name, tags=tags, fetched_at=fetched,
            max_body_chars=max_body_chars,
        )  # fmt: skip
    check_xml_safety(content, source=feed_url)

    # feedparser resolves relative links against Content-Location (and xml:base). Only an
    # HTTP(S) feed URL is a base; a file URI would turn every relative link into a file
    # path, so replayed files keep them relative and they resolve against the site link.
    fp_headers: dict[str, str] = {}
    if _http_url(feed_url) is not None:
        fp_headers["content-location"] = feed_url
    if headers.get("content-language"):
        fp_headers["content-language"] = headers["content-language"]
    # feedparser applies RFC 3023 to the HTTP Content-Type ("text/xml" without charset
    # means US-ASCII, a missing header means Latin-1); neither is what publishers mean.
    # A BOM or XML declaration wins; else the HTTP charset; else UTF-8 with feedparser's
    # windows-1252 fallback for undeclared Latin-1.
    charset = _charset(headers)
    if charset and not _self_described(content):
        fp_headers["content-type"] = f"application/xml; charset={charset}"
    else:
        fp_headers["content-type"] = "application/xml"

    result = feedparser.parse(
        content,
        response_headers=fp_headers,
        sanitize_html=False,  # html_to_text keeps text only; sanitising would double the work
        resolve_relative_uris=False,  # links are resolved here; markup links are dropped
    )
    feed = result.get("feed") or {}
    entries = result.get("entries") or []
    version = result.get("version") or ""
    bozo_exc = result.get("bozo_exception")
    bozo_reason = f"{type(bozo_exc).__name__}: {bozo_exc}" if result.get("bozo") else None
    title_detail = feed.get("title_detail") or {}
    title = _content_text(feed.get("title"), title_detail.get("type")) or None
    if not version and not entries and not title:
        raise BadInputError(feed_url, f"not a feed ({bozo_reason or 'no feed elements'})")

    link = _http_url(feed.get("link"), feed_url)
    language = feed.get("language") or headers.get("content-language") or None
    source = _source_for(feed_url, source_name, title, link)
    articles, skipped = _to_articles(
        entries,
        "entry",
        feed_url=feed_url,
        base_url=link_base(feed_url, link),
        source=source,
        tags=tags,
        language=language,
        fetched_at=fetched,
        max_body_chars=max_body_chars,
    )
    return ParsedFeed(
        articles=articles,
        title=title,
        link=link,
        language=language if isinstance(language, str) else None,
        version=version,
        bozo_reason=bozo_reason,
        encoding=decoded.encoding or result.get("encoding"),
        ttl_seconds=(_number(feed.get("ttl")) or 0) * 60 or None,
        update_period_seconds=_update_period(feed),
        entry_count=len(entries),
        skipped=skipped,
    )


# --------------------------------------------------------------------------------------
# JSON Feed (https://jsonfeed.org/version/1.1)
# --------------------------------------------------------------------------------------


def _json_authors(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    authors = obj.get("authors")
    if isinstance(authors, list):
        return [a for a in authors if isinstance(a, dict)]
    author = obj.get("author")
    return [author] if isinstance(author, dict) else []


def json_item_to_entry(item: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Feed item in feedparser's entry vocabulary (so one mapping serves both)."""
    entry: dict[str, Any] = {}
    item_id = item.get("id")
    if item_id is not None:
        entry["id"] = str(item_id)
    entry["link"] = item.get("url") or item.get("external_url")
    entry["guidislink"] = False
    if isinstance(item.get("title"), str):
        entry["title"] = item["title"]
        entry["title_detail"] = {"type": "text/plain"}
    if isinstance(item.get("summary"), str):
        entry["summary"] = item["summary"]
        entry["summary_detail"] = {"type": "text/plain"}
    if isinstance(item.get("content_html"), str):
        entry["content"] = [{"value": item["content_html"], "type": "text/html"}]
    elif isinstance(item.get("content_text"), str):
        entry["content"] = [{"value": item["content_text"], "type": "text/plain"}]
    entry["authors"] = _json_authors(item)
    entry["tags"] = [{"term": str(t)} for t in item.get("tags") or [] if isinstance(t, str)]
    for key, target in (
        ("date_published", "published_parsed"),
        ("date_modified", "updated_parsed"),
    ):
        parsed = parse_iso_datetime(item.get(key))
        if parsed is not None:
            entry[target] = parsed.utctimetuple()
    if isinstance(item.get("language"), str):
        entry["language"] = item["language"]
    return entry


def _parse_json_feed(
    content: bytes,
    *,
    feed_url: str,
    source_name: str | None,
    tags: Sequence[str],
    fetched_at: datetime,
    max_body_chars: int | None,
) -> ParsedFeed:
    try:
        document = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(feed_url, f"not a feed (invalid JSON: {exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise BadInputError(feed_url, "not a feed (JSON without an items list)")
    version_url = str(document.get("version") or "")
    if "jsonfeed.org" not in version_url:
        raise BadInputError(feed_url, "not a feed (JSON without a jsonfeed.org version)")
    version = "json" + version_url.rstrip("/").rsplit("/", 1)[-1].replace(".", "")
    title = document.get("title") if isinstance(document.get("title"), str) else None
    link = _http_url(document.get("home_page_url"))
    language = document.get("language") if isinstance(document.get("language"), str) else None
    source = _source_for(feed_url, source_name, title, link)
    feed_authors = _json_authors(document)
    items = document["items"]
    entries: list[dict[str, Any] | None] = []
    for item in items:
        entry = json_item_to_entry(item) if isinstance(item, dict) else None
        if entry is not None and not entry["authors"]:
            entry["authors"] = feed_authors
        entries.append(entry)
    articles, skipped = _to_articles(
        entries,
        "item",
        feed_url=feed_url,
        base_url=link_base(feed_url, link),
        source=source,
        tags=tags,
        language=language,
        fetched_at=fetched_at,
        max_body_chars=max_body_chars,
    )
    return ParsedFeed(
        articles=articles,
        title=title,
        link=link,
        language=language,
        version=version,
        encoding="utf-8",
        entry_count=len(items),
        skipped=skipped,
    )


def parse_feed_safely(content: bytes, **kwargs: Any) -> ParsedFeed | BadInputError:
    """:func:`parse_feed` for a process pool: a bad document comes back as the error."""
    try:
        return parse_feed(content, **kwargs)
    except BadInputError as exc:
        return exc


__all__ = [
    "MAX_FEED_BYTES",
    "ParsedFeed",
    "check_xml_safety",
    "entry_to_article",
    "html_to_text",
    "link_base",
    "parse_feed",
    "parse_feed_safely",
    "parse_iso_datetime",
    "plain_text",
    "struct_to_datetime",
]

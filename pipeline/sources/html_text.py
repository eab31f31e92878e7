"""HTML (or plain text) from a feed -> clean plain text: tags, scripts and styles dropped,
entities decoded, whitespace collapsed, paragraphs kept. Pure, no I/O."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

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


def content_text(value: str | None, content_type: str | None) -> str:
    """A feed text construct as plain text: ``text/plain`` kept as text, anything else
    read as HTML."""
    if not value:
        return ""
    if content_type and content_type.lower() == "text/plain":
        return plain_text(value)
    return html_to_text(value)


def collapse_spaces(text: str) -> str:
    """``text`` with each run of horizontal whitespace as one space, stripped."""
    return _SPACES.sub(" ", text).strip()


__all__ = ["collapse_spaces", "content_text", "html_to_text", "plain_text"]

"""Which Unicode encoding a feed document is in, and the same document as UTF-8.

Expat and feedparser read UTF-8 and single-byte documents well, but a UTF-16 or UTF-32
document (with a byte order mark, or only a declaration that the XML spec's appendix F
lets a reader find from the first bytes) makes expat raise ``ValueError: multi-byte
encodings are not supported`` when it is told the declared name, and the XML safety check
could not read such a prolog at all. So the wide encodings are decoded here, once, into
UTF-8 with the declaration rewritten to say so; every later step (safety check, JSON Feed
detection, feedparser) then sees the document like a UTF-8 one. Pure, no I/O; undecodable
units become U+FFFD instead of an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Byte order marks, longest first (the UTF-32LE mark starts with the UTF-16LE one).
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xef\xbb\xbf", "utf-8"),
)
#: The declaration's encoding pseudo-attribute (in decoded text).
_DECLARED = re.compile(r"""^(\s*<\?xml\b[^>]*?\bencoding\s*=\s*)(["'])([^"']*)\2""", re.I)
_DECLARED_BYTES = re.compile(rb"""^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([^"']*)["']""", re.I)
_WIDE = ("utf-16", "utf-32", "ucs-2", "ucs-4", "utf16", "utf32", "ucs2", "ucs4")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A document ready for byte-oriented XML tools."""

    content: bytes  # UTF-8 (when ``encoding`` is wide) or the input bytes unchanged
    encoding: str | None  # the wide encoding found (``utf-16-le`` ...), None otherwise
    declared: str | None  # the encoding the declaration named, if any


def _sniff_wide(head: bytes) -> str | None:
    """UTF-16/32 from the first four bytes without a BOM (XML 1.0 appendix F: a document
    starts with ``<`` or whitespace, so its first code units show the NUL pattern)."""
    if len(head) < 4:
        return None
    b0, b1, b2, b3 = head[0], head[1], head[2], head[3]
    if b0 == b1 == b2 == 0 and b3:
        return "utf-32-be"
    if b0 and b1 == b2 == b3 == 0:
        return "utf-32-le"
    if b0 == 0 and b1 and b2 == 0 and b3:
        return "utf-16-be"
    if b0 and b1 == 0 and b2 and b3 == 0:
        return "utf-16-le"
    return None


def detect(content: bytes) -> tuple[str | None, int]:
    """The encoding a BOM or the NUL pattern shows (None: an 8-bit or UTF-8 document)
    and the length of the BOM."""
    for bom, name in _BOMS:
        if content.startswith(bom):
            return name, len(bom)
    return _sniff_wide(content[:4]), 0


def declared_encoding(content: bytes) -> str | None:
    """The encoding an ASCII-compatible document's XML declaration names."""
    match = _DECLARED_BYTES.match(content[:1024])
    return match.group(1).decode("ascii", "replace").strip() or None if match else None


def is_wide(name: str | None) -> bool:
    """Whether an encoding name is UTF-16/32 (UCS-2/4) in any spelling."""
    return name is not None and name.lower().replace("_", "-").startswith(_WIDE)


def to_utf8(content: bytes) -> Decoded:
    """``content`` as UTF-8 when it is UTF-16/32 (BOM or NUL pattern), declaration
    rewritten to ``utf-8``; an 8-bit document that *declares* a wide encoding (it cannot
    be: its bytes say otherwise) has that declaration dropped to UTF-8 too. Everything
    else is returned unchanged."""
    encoding, bom = detect(content)
    if encoding is None or encoding == "utf-8":
        declared = declared_encoding(content[bom:])
        if is_wide(declared):
            # "UTF-16" declared over 8-bit bytes: believe the bytes.
            raw = content[bom:]
            found = _DECLARED_BYTES.match(raw[:1024])
            if found:
                start, end = found.span(1)
                raw = raw[:start] + b"utf-8" + raw[end:]
            return Decoded(raw, None, declared)
        return Decoded(content, None, declared)
    body = content[bom:]
    unit = 4 if encoding.startswith("utf-32") else 2
    body = body[: len(body) - len(body) % unit] if len(body) % unit else body
    text = body.decode(encoding, errors="replace")
    declared = None
    match = _DECLARED.match(text[:1024])
    if match:
        declared = match.group(3).strip() or None
        text = f"{match.group(1)}{match.group(2)}utf-8{match.group(2)}{text[match.end() :]}"
    # Surrogates cannot be encoded: a lone one in UTF-16 became U+FFFD above, but a
    # UTF-32 unit in the surrogate range decodes to one, so replace on the way out too.
    return Decoded(text.encode("utf-8", errors="replace"), encoding, declared)


def expat_input(content: bytes) -> tuple[bytes, str]:
    """What the XML safety check hands expat, and the encoding to force: wide documents
    as UTF-8, everything else as Latin-1 (every byte is a character; markup is ASCII)."""
    decoded = to_utf8(content)
    if decoded.encoding is not None:
        return decoded.content, "utf-8"
    return decoded.content, "iso-8859-1"


__all__ = ["Decoded", "declared_encoding", "detect", "expat_input", "is_wide", "to_utf8"]

"""Article identity (docs/architecture.md): canonical URLs and the ids derived from them."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters that only track a click and never change the article.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid",
        "igshid", "yclid", "_hsenc", "_hsmi", "ocid", "cmpid", "ns_mchannel", "ns_source",
        "ns_campaign", "ns_linkname", "ns_fee", "ito", "at_medium", "at_campaign", "smid",
        "ref_src", "CMP", "cmp", "taid", "xtor",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "at_custom", "__twitter")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    return name in TRACKING_PARAMS or name.lower().startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, default port, fragment and tracking parameters dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    netloc = host
    if parts.port is not None and DEFAULT_PORTS.get(scheme) != parts.port:
        netloc = f"{host}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    )
    path = parts.path or ("/" if host else "")
    return urlunsplit((scheme, netloc, path, query, ""))


def digest_id(*parts: str) -> str:
    """Hex of the first 16 bytes of SHA-256 over the parts (joined by a NUL byte)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()[:16].hex()


def article_id(url: str | None, *, feed_url: str | None = None, guid: str | None = None) -> str:
    """The id of an article: from its canonical URL, else from feed URL + GUID."""
    if url:
        return digest_id(canonical_url(url))
    if guid:
        return digest_id(feed_url or "", guid)
    raise ValueError("an article needs a URL or a GUID to have an id")


def content_id(content: bytes | str) -> str:
    """The id of a seed file: a hash of its content."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).digest()[:16].hex()

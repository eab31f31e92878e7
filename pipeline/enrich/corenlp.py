"""Named entities from a Stanford CoreNLP server, over HTTP only.

CoreNLP is GPL-3.0. Newswire never links, imports or bundles it: the server runs as its
own process (the local stack's ``workshop/stack/corenlp.py``, a container in
docker-compose / Kubernetes) and this module only speaks its HTTP protocol.

Batching: several texts go into one request, joined by a blank-line separator (a sentence
break for CoreNLP's splitter, and the CRF labels each sentence on its own, so texts never
influence each other). Tokens are mapped back to their text by character offset. A request
is capped at :data:`MAX_REQUEST_CHARS`; a longer text travels alone.

Failures: a refused connection, a timeout or a 5xx answer raise
:class:`RecogniserUnavailableError`, a :class:`RetryableError`: the worker waits and
retries the batch instead of indexing articles without entities.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import structlog

from pipeline.enrich.entities import Span
from pipeline.errors import ConfigError, RecogniserUnavailableError
from pipeline.settings import CORENLP_MODEL

log = structlog.get_logger(__name__)

SEPARATOR = "\n\n"
MAX_REQUEST_CHARS = 60_000
RETRY_AFTER = 5.0  # seconds a caller should wait after an outage

#: Annotation properties sent with every request: tokenize, ssplit and the CRF only.
#: ``enforceRequirements=false`` stops the server from adding pos and lemma; the numeric,
#: SUTime and fine-grained steps are many times slower than the CRF itself. The model file
#: (``ner.model``) is the server's own setting.
REQUEST_PROPERTIES: dict[str, str] = {
    "annotators": "tokenize,ssplit,ner",
    "enforceRequirements": "false",
    "outputFormat": "json",
    "ssplit.newlineIsSentenceBreak": "two",
    "ner.applyNumericClassifiers": "false",
    "ner.useSUTime": "false",
    "ner.applyFineGrained": "false",
    "ner.buildEntityMentions": "false",
}
#: The tags of the 3-class model (and the 4-class model's MISC); "O" is no entity.
ENTITY_TAGS = frozenset({"PERSON", "ORGANIZATION", "LOCATION", "MISC"})


def _utf16_to_index(text: str) -> list[int] | None:
    """Map UTF-16 code-unit offsets (Java's) to Python indices; None when they agree."""
    if all(ord(ch) < 0x10000 for ch in text):
        return None
    table: list[int] = []
    for i, ch in enumerate(text):
        table.append(i)
        if ord(ch) >= 0x10000:
            table.append(i)
    table.append(len(text))
    return table


def spans_from_json(
    document: dict[str, Any], starts: Sequence[int], lengths: Sequence[int], joined: str
) -> list[list[Span]]:
    """Entity spans per text from CoreNLP's JSON for the ``joined`` texts.

    Adjacent tokens with the same tag form one span (the 3-class model has no B/I tags),
    never across a sentence or a text boundary. ``starts`` are the texts' offsets in
    ``joined``; spans come back with offsets relative to their own text.
    """
    out: list[list[Span]] = [[] for _ in starts]
    table = _utf16_to_index(joined)
    text_no = 0

    def flush(run: tuple[str, int, int] | None) -> None:
        if run is None:
            return
        label, start, end = run
        base = starts[text_no]
        out[text_no].append(Span(label, start - base, end - base))

    for sentence in document.get("sentences", []):
        run: tuple[str, int, int] | None = None
        for token in sentence.get("tokens", []):
            begin = int(token["characterOffsetBegin"])
            end = int(token["characterOffsetEnd"])
            if table is not None:
                begin, end = table[min(begin, len(table) - 1)], table[min(end, len(table) - 1)]
            while text_no + 1 < len(starts) and begin >= starts[text_no + 1]:
                flush(run)
                run = None
                text_no += 1
            end = min(end, starts[text_no] + lengths[text_no])
            tag = token.get("ner", "O")
            if tag not in ENTITY_TAGS:
                flush(run)
                run = None
            elif run is not None and run[0] == tag:
                run = (tag, run[1], end)
            else:
                flush(run)
                run = (tag, begin, end)
        flush(run)
    return out


class CoreNLPRecogniser:
    """Entity spans for many texts, from a CoreNLP server at ``url`` (thread-safe)."""

    name = "corenlp"

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        max_request_chars: int = MAX_REQUEST_CHARS,
        model: str = CORENLP_MODEL,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"NEWSWIRE_CORENLP_URL must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/") + "/"
        self.model = model
        self.timeout = timeout
        self.max_request_chars = max_request_chars
        self._params = {"properties": json.dumps(REQUEST_PROPERTIES, separators=(",", ":"))}
        self._local = threading.local()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
            self._local.client = client
        return client

    def available(self, timeout: float = 2.0) -> bool:
        """True when the server answers its liveness page."""
        try:
            reply = httpx.get(self.url + "live", timeout=timeout)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    def spans(self, texts: Sequence[str]) -> list[list[Span]]:
        """Entity spans of every text, same order; one request per batch of texts."""
        out: list[list[Span]] = []
        for batch in self._batches(texts):
            out.extend(self._annotate(batch))
        return out

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        batches: list[list[str]] = []
        current: list[str] = []
        size = 0
        for text in texts:
            if current and size + len(text) + len(SEPARATOR) > self.max_request_chars:
                batches.append(current)
                current, size = [], 0
            current.append(text)
            size += len(text) + len(SEPARATOR)
        if current:
            batches.append(current)
        return batches

    def _annotate(self, texts: list[str]) -> list[list[Span]]:
        starts: list[int] = []
        pos = 0
        for text in texts:
            starts.append(pos)
            pos += len(text) + len(SEPARATOR)
        joined = SEPARATOR.join(texts)
        if not joined.strip():
            return [[] for _ in texts]
        try:
            reply = self._client().post(
                self.url, params=self._params, content=joined.encode("utf-8")
            )
        except httpx.TimeoutException as exc:
            raise RecogniserUnavailableError(
                self.url, f"no answer in {self.timeout:.0f} s ({type(exc).__name__})", RETRY_AFTER
            ) from exc
        except httpx.HTTPError as exc:
            raise RecogniserUnavailableError(
                self.url, f"{type(exc).__name__}: {exc}", RETRY_AFTER
            ) from exc
        if reply.status_code >= 500 or reply.status_code == 429:
            raise RecogniserUnavailableError(
                self.url, f"HTTP {reply.status_code}: {reply.text[:200]}", RETRY_AFTER
            )
        if reply.status_code != 200:
            # a 4xx is a request this client built wrong: a bug, not an outage
            raise ConfigError(f"CoreNLP at {self.url} refused the request: {reply.text[:300]}")
        try:
            document = reply.json()
        except ValueError as exc:
            raise RecogniserUnavailableError(
                self.url, f"answer is not JSON: {reply.text[:200]!r}", RETRY_AFTER
            ) from exc
        return spans_from_json(document, starts, [len(t) for t in texts], joined)

    def close(self) -> None:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

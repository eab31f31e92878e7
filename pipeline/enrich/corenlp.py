"""Named entities from a Stanford CoreNLP server, over HTTP only.

CoreNLP is GPL-3.0. Newswire never links, imports or bundles it: the server runs as its
own process (the local stack's ``workshop/stack/corenlp.py``, a container in
docker-compose / Kubernetes) and this module only speaks its HTTP protocol.

Batching: several texts go into one request, joined by a blank-line separator (a sentence
break for CoreNLP's splitter, and the CRF labels each sentence on its own, so texts never
influence each other). Tokens are mapped back to their text by character offset. A request
is capped at :data:`MAX_REQUEST_CHARS`; a longer text travels alone.

Replicas: ``url`` may name several servers (``NEWSWIRE_CORENLP_URL`` takes a list), and a
host name is re-resolved every ``resolve_seconds`` into one endpoint per address (a
Kubernetes headless Service: one per ready pod). Every request picks its endpoint from
:class:`~pipeline.enrich.endpoints.EndpointPool` (fewest in flight, round-robin), so the
load spreads over the replicas instead of sticking to one keep-alive connection.

Failures: a refused connection, a timeout or a 5xx answer put that endpoint down for a
cool-down and the request goes to the next one; only when every endpoint failed does the
batch raise :class:`RecogniserUnavailableError`, a :class:`RetryableError`: the worker
waits and retries the batch instead of indexing articles without entities.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from pipeline.enrich.endpoints import COOLDOWN, EndpointPool, expand, parse_urls
from pipeline.enrich.entities import Span
from pipeline.errors import ConfigError, NewswireError, RecogniserUnavailableError
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


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _EndpointFailedError(NewswireError):
    """One endpoint's retryable failure; the request moves on to the next endpoint."""


class CoreNLPRecogniser:
    """Entity spans for many texts, from one or more CoreNLP servers (thread-safe).

    ``url`` is one URL, a comma-separated list or a sequence of URLs. ``resolve_seconds``
    (> 0) re-resolves plain-http host names that often and balances over every address.
    """

    name = "corenlp"

    def __init__(
        self,
        url: str | Sequence[str],
        timeout: float = 60.0,
        max_request_chars: int = MAX_REQUEST_CHARS,
        model: str = CORENLP_MODEL,
        *,
        resolve_seconds: float = 0.0,
        cooldown: float = COOLDOWN,
        resolver: Callable[[str, int], list[str]] = resolve_addresses,
    ) -> None:
        given = url if isinstance(url, str) else ",".join(url)
        self.configured = parse_urls(given)
        self.url = ",".join(self.configured)
        self.model = model
        self.timeout = timeout
        self.max_request_chars = max_request_chars
        self.resolve_seconds = resolve_seconds
        self._resolver = resolver
        self._params = {"properties": json.dumps(REQUEST_PROPERTIES, separators=(",", ":"))}
        self._local = threading.local()
        self._resolve_lock = threading.Lock()
        self._resolved_at = float("-inf")
        self.pool = EndpointPool(
            self._resolve() if resolve_seconds > 0 else self.configured, cooldown=cooldown
        )
        if resolve_seconds > 0:
            self._resolved_at = time.monotonic()

    def _resolve(self) -> list[str]:
        """The configured URLs with plain-http host names expanded to their addresses; a
        name that does not resolve now stays as it is (its failure shows on the request)."""
        out: list[str] = []
        for url in self.configured:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                addresses = self._resolver(host, port)
            except OSError as exc:
                log.warning("corenlp.resolve_failed", host=host, error=str(exc))
                addresses = []
            out.extend(u for u in expand(url, addresses) if u not in out)
        return out

    def _refresh(self) -> None:
        """Re-resolve the names when ``resolve_seconds`` have passed (one thread does it)."""
        if self.resolve_seconds <= 0:
            return
        if time.monotonic() - self._resolved_at < self.resolve_seconds:
            return
        if not self._resolve_lock.acquire(blocking=False):
            return
        try:
            urls = self._resolve()
            if urls != self.pool.urls:
                log.info("corenlp.endpoints", endpoints=urls)
            self.pool.replace(urls)
            self._resolved_at = time.monotonic()
        finally:
            self._resolve_lock.release()

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
        """True when any server answers its liveness page."""
        for url in self.pool.urls:
            try:
                reply = httpx.get(url + "live", timeout=timeout)
            except httpx.HTTPError:
                continue
            if reply.status_code == 200:
                return True
        return False

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
        self._refresh()
        reasons: list[str] = []
        for url in self.pool.order():
            self.pool.begin(url)
            ok = False
            try:
                document = self._post(url, joined)
                ok = True
            except _EndpointFailedError as exc:
                reasons.append(f"{url}: {exc}")
                log.warning("corenlp.endpoint_failed", endpoint=url, reason=str(exc))
                continue
            finally:
                self.pool.end(url, ok)
            return spans_from_json(document, starts, [len(t) for t in texts], joined)
        raise RecogniserUnavailableError(self.url, "; ".join(reasons), RETRY_AFTER)

    def _post(self, url: str, joined: str) -> dict[str, Any]:
        """CoreNLP's JSON for ``joined`` from the server at ``url``; raises
        :class:`_EndpointFailedError` when it is unreachable, slow, overloaded or answers
        garbage (another endpoint may do better)."""
        try:
            reply = self._client().post(url, params=self._params, content=joined.encode("utf-8"))
        except httpx.TimeoutException as exc:
            raise _EndpointFailedError(
                f"no answer in {self.timeout:.0f} s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise _EndpointFailedError(f"{type(exc).__name__}: {exc}") from exc
        if reply.status_code >= 500 or reply.status_code == 429:
            raise _EndpointFailedError(f"HTTP {reply.status_code}: {reply.text[:200]}")
        if reply.status_code != 200:
            # a 4xx is a request this client built wrong: a bug, not an outage
            raise ConfigError(f"CoreNLP at {url} refused the request: {reply.text[:300]}")
        try:
            document: dict[str, Any] = reply.json()
        except ValueError as exc:
            raise _EndpointFailedError(f"answer is not JSON: {reply.text[:200]!r}") from exc
        return document

    def close(self) -> None:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

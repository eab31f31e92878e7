"""Spread requests over several replicas of one HTTP service (CoreNLP), pure logic.

Why: a CoreNLP client thread kept one keep-alive connection, so behind a Kubernetes
Service every worker stuck to one pod and the other replicas idled. Here every request
picks its endpoint afresh:

- **least in flight first**, ties broken round-robin: a slow replica gets fewer requests,
  idle replicas get the next ones;
- **failover**: an endpoint that refused, timed out or answered 5xx is *down* for a
  cool-down and tried only after every healthy one (still tried, last: a lone replica that
  blipped is better than no answer);
- **names re-resolved**: :func:`expand` turns ``http://corenlp:9000/`` into one URL per
  address the name resolves to (a headless Service gives one per ready pod), and
  :meth:`EndpointPool.replace` swaps the list while keeping what is known of each address.

The pool is thread-safe; the clock is injectable so tests need no sleeping.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import ConfigError

COOLDOWN = 5.0  # seconds an endpoint that failed is tried only after the healthy ones


def parse_urls(value: str, setting: str = "NEWSWIRE_CORENLP_URL") -> list[str]:
    """A comma- or space-separated list of http(s) URLs, each ending in ``/``, no repeats."""
    urls: list[str] = []
    for part in value.replace(",", " ").split():
        if not part.startswith(("http://", "https://")) or not urlsplit(part).hostname:
            raise ConfigError(f"{setting} must be http(s) URLs, got {part!r}")
        url = part.rstrip("/") + "/"
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ConfigError(f"{setting} names no URL")
    return urls


def is_literal_address(host: str) -> bool:
    """True for ``127.0.0.1`` or ``::1``: nothing to resolve."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def expand(url: str, addresses: Iterable[str]) -> list[str]:
    """``url`` once per resolved address (the host replaced, port and path kept).

    Only plain-http URLs with a host name are expanded: an https certificate names the
    host, not its addresses, so https URLs (and literal addresses) come back unchanged.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not host or is_literal_address(host):
        return [url]
    out: list[str] = []
    port = f":{parts.port}" if parts.port else ""
    for address in addresses:
        shown = f"[{address}]" if ":" in address else address
        candidate = urlunsplit(parts._replace(netloc=f"{shown}{port}"))
        if candidate not in out:
            out.append(candidate)
    return out or [url]


@dataclass
class _State:
    in_flight: int = 0
    down_until: float = 0.0
    failures: int = 0
    requests: int = 0


class EndpointPool:
    """The endpoints of one service and what is known of each (thread-safe)."""

    def __init__(
        self,
        urls: Sequence[str],
        cooldown: float = COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ConfigError("an endpoint pool needs at least one URL")
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._urls: list[str] = list(dict.fromkeys(urls))
        self._state: dict[str, _State] = {url: _State() for url in self._urls}
        self._turn = 0

    @property
    def urls(self) -> list[str]:
        with self._lock:
            return list(self._urls)

    def replace(self, urls: Sequence[str]) -> None:
        """New endpoint list (a DNS refresh); known endpoints keep their state."""
        if not urls:
            return
        with self._lock:
            self._urls = list(dict.fromkeys(urls))
            self._state = {url: self._state.get(url, _State()) for url in self._urls}

    def order(self) -> list[str]:
        """Every endpoint, in the order one request should try them.

        Healthy ones first, fewest requests in flight first, ties in round-robin order from
        a cursor that moves on with every call; then the down ones, soonest back first.
        """
        with self._lock:
            now = self._clock()
            n = len(self._urls)
            start = self._turn % n
            self._turn += 1
            rotated = self._urls[start:] + self._urls[:start]
            rank = {url: i for i, url in enumerate(rotated)}
            healthy = [u for u in rotated if self._state[u].down_until <= now]
            down = [u for u in rotated if self._state[u].down_until > now]
            healthy.sort(key=lambda u: (self._state[u].in_flight, rank[u]))
            down.sort(key=lambda u: (self._state[u].down_until, rank[u]))
            return healthy + down

    def begin(self, url: str) -> None:
        """A request to ``url`` starts."""
        with self._lock:
            state = self._state.get(url)
            if state is not None:
                state.in_flight += 1
                state.requests += 1

    def end(self, url: str, ok: bool) -> None:
        """The request to ``url`` is over; a failure puts it down for the cool-down."""
        with self._lock:
            state = self._state.get(url)
            if state is None:  # replaced meanwhile
                return
            state.in_flight = max(0, state.in_flight - 1)
            if ok:
                state.down_until = 0.0
                state.failures = 0
            else:
                state.failures += 1
                state.down_until = self._clock() + self.cooldown

    def is_down(self, url: str) -> bool:
        with self._lock:
            state = self._state.get(url)
            return state is not None and state.down_until > self._clock()

    def requests(self) -> dict[str, int]:
        """Requests started per endpoint (for tests, benches and logs)."""
        with self._lock:
            return {url: self._state[url].requests for url in self._urls}

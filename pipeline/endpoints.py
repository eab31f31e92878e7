"""The local stack's endpoints file, read once by the command line into the settings.

``newswire stack up`` (``workshop.stack``) writes ``<home>/endpoints.json`` with where its
services listen, and removes it on ``stack down``::

    {"kafka_bootstrap": "127.0.0.1:19092", "search_engine": "elasticsearch",
     "search_url": "http://127.0.0.1:19200", "corenlp_url": "http://127.0.0.1:19500/"}

(a service that was not started is ``null``). This module is the runtime's only view of it:
the CLI calls :func:`resolve` at start, which fills ``kafka_bootstrap`` and the search URL
of the settings when they are unset, so runtime code only ever reads its settings and never
imports the stack. A file none of whose services answers (left by a crash or a reboot) is
ignored; a service that is listed but down keeps its endpoint, so a worker meets a
retryable connection error and waits for it instead of failing on a missing setting.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import structlog

from pipeline.settings import Settings

log = structlog.get_logger(__name__)

ENDPOINTS_FILE = "endpoints.json"
Engine = Literal["elasticsearch", "opensearch"]
ENGINES: frozenset[str] = frozenset({"elasticsearch", "opensearch"})
#: Seconds to wait for a loopback port to accept a connection.
PROBE_TIMEOUT = 0.5


@dataclass(frozen=True)
class LocalEndpoints:
    """Where the local stack's services listen; None for a service it did not start."""

    kafka_bootstrap: str | None = None
    search_engine: Engine | None = None
    search_url: str | None = None
    corenlp_url: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The file's JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> LocalEndpoints | None:
        """The endpoints in ``data``, or None when it is not an endpoints object."""
        if not isinstance(data, dict):
            return None
        values = {key: data.get(key) for key in ("kafka_bootstrap", "search_url", "corenlp_url")}
        if not all(value is None or isinstance(value, str) for value in values.values()):
            return None
        engine = data.get("search_engine")
        if values["search_url"] and engine not in ENGINES:
            return None
        return cls(search_engine=engine if engine in ENGINES else None, **values)

    def listed(self) -> dict[str, str]:
        """Service name -> endpoint, for the services the stack started."""
        named = {
            "kafka": self.kafka_bootstrap,
            "search": self.search_url,
            "corenlp": self.corenlp_url,
        }
        return {name: value for name, value in named.items() if value}


def endpoints_path(home: Path) -> Path:
    """``<home>/endpoints.json``."""
    return home.expanduser().resolve() / ENDPOINTS_FILE


def write_endpoints(home: Path, endpoints: LocalEndpoints) -> Path:
    """Write the file atomically (readers never see half of it); returns its path."""
    path = endpoints_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints.as_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def remove_endpoints(home: Path) -> None:
    """Remove the file (the stack is down)."""
    endpoints_path(home).unlink(missing_ok=True)


def read_endpoints(home: Path) -> LocalEndpoints | None:
    """The file's endpoints; None when there is no file or it is not an endpoints object."""
    try:
        data = json.loads(endpoints_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return LocalEndpoints.from_json(data)


def host_port(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of a URL or of the first ``host:port`` of a bootstrap list."""
    first = endpoint.split(",")[0].strip()
    parts = urlsplit(first if "://" in first else f"//{first}")
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or port is None:
        return None
    return parts.hostname, port


def answers(endpoint: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether something accepts a connection at ``endpoint``."""
    address = host_port(endpoint)
    if address is None:
        return False
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def apply_endpoints(settings: Settings, endpoints: LocalEndpoints) -> Settings:
    """``settings`` with the unset Kafka bootstrap and search URL taken from ``endpoints``
    (configured values always win). The search engine becomes the one the stack started,
    whatever ``NEWSWIRE_SEARCH_ENGINE`` says, since that is what listens there."""
    update: dict[str, Any] = {}
    if not settings.kafka_bootstrap and endpoints.kafka_bootstrap:
        update["kafka_bootstrap"] = endpoints.kafka_bootstrap
    searching = settings.elasticsearch_url or settings.opensearch_url
    if not searching and endpoints.search_url and endpoints.search_engine:
        update["search_engine"] = endpoints.search_engine
        update[f"{endpoints.search_engine}_url"] = endpoints.search_url
    return settings.model_copy(update=update) if update else settings


def resolve(settings: Settings) -> Settings:
    """The settings the commands run with: the local stack's endpoints filled in where
    nothing is configured. Called once by the CLI; runtime code never reads the file."""
    if settings.kafka_bootstrap and (settings.elasticsearch_url or settings.opensearch_url):
        return settings
    endpoints = read_endpoints(settings.home)
    if endpoints is None:
        return settings
    listed = endpoints.listed()
    down = [name for name, endpoint in listed.items() if not answers(endpoint)]
    if len(down) == len(listed):
        log.info("endpoints.stale", file=str(endpoints_path(settings.home)), services=down)
        return settings
    for name in down:
        log.warning(
            "local stack service not running: start it with `newswire stack up`",
            service=name,
            endpoint=listed[name],
        )
    return apply_endpoints(settings, endpoints)

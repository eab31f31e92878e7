"""Kafka connection, the idempotent producer, and record encoding."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
)

from pipeline.errors import KafkaAuthError, KafkaUnavailableError
from pipeline.kafka.security import bootstrap as bootstrap  # re-exported: callers import it here
from pipeline.kafka.security import client_options
from pipeline.models import RawArticle
from pipeline.settings import Settings

#: Larger than any article we keep (bodies are capped by max_body_chars).
MAX_REQUEST_SIZE = 4 * 1024 * 1024


def encode(record: dict[str, Any] | RawArticle) -> bytes:
    """JSON bytes for a Kafka value."""
    if isinstance(record, RawArticle):
        return record.model_dump_json().encode("utf-8")
    return json.dumps(record, ensure_ascii=False, default=str).encode("utf-8")


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with ``acks=all`` and idempotence (docs/architecture.md, delivery guarantees)."""
    options: dict[str, Any] = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": "gzip",
        "linger_ms": 20,
        "max_request_size": MAX_REQUEST_SIZE,
        "client_id": f"{settings.worker_id}-producer",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


#: Why a connection failed, as aiokafka names it, when it is the credentials or TLS.
AUTH_FAILURES = (
    "SaslAuthenticationFailed",
    "AuthenticationFailed",
    "IllegalSaslState",
    "UnsupportedSaslMechanism",
    "AuthenticationMethodNotSupported",
    "CERTIFICATE_VERIFY_FAILED",
    "TLSV1_ALERT",
    "SSLV3_ALERT",
    "WRONG_VERSION_NUMBER",
)


class _BootstrapFailures(logging.Filter):
    """Keeps aiokafka's per-host "Unable connect" lines (the only place the real reason of a
    failed bootstrap is given) for the error raised, instead of letting them log."""

    def __init__(self, servers: str) -> None:
        super().__init__()
        self.hosts = [s.strip() for s in servers.split(",") if s.strip()]
        self.reasons: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if not text.startswith("Unable connect to") or not isinstance(record.args, tuple):
            return True
        where = ":".join(str(a) for a in record.args[:-1])
        if self.hosts and not any(where == h or h.endswith(where) for h in self.hosts):
            return True
        self.reasons.append(str(record.args[-1]))
        return False


def _sasl_user(client: Any) -> str | None:
    # The producer keeps its AIOKafkaClient in ``client``, consumers and admins in ``_client``.
    inner = getattr(client, "_client", None) or getattr(client, "client", None)
    user = getattr(inner, "_sasl_plain_username", None)
    return user if isinstance(user, str) else None


async def start_client(client: Any, servers: str) -> None:
    """Start an aiokafka client; an unreachable broker becomes a KafkaUnavailableError and
    refused credentials or TLS a KafkaAuthError, each with the reason and without a
    traceback in the logs (the half-started client is closed)."""
    failures = _BootstrapFailures(servers)
    aiokafka_log = logging.getLogger("aiokafka")  # aiokafka.client logs as "aiokafka"
    aiokafka_log.addFilter(failures)
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await (client.close() if hasattr(client, "close") else client.stop())
        reason = failures.reasons[-1] if failures.reasons else str(exc) or type(exc).__name__
        if any(marker in reason for marker in AUTH_FAILURES):
            raise KafkaAuthError(servers, reason, _sasl_user(client)) from None
        raise KafkaUnavailableError(servers, reason) from exc
    finally:
        aiokafka_log.removeFilter(failures)


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> int:
    """Send (key, value) records and wait until the broker acknowledged every one."""
    futures = [await producer.send(topic, value=value, key=key) for key, value in records]
    for future in futures:
        await future
    return len(futures)


async def publish_raw(
    producer: AIOKafkaProducer, topic: str, articles: Iterable[RawArticle]
) -> int:
    """Send raw articles keyed by id and wait until the broker acknowledged all of them."""
    return await send_all(producer, topic, ((a.id.encode("utf-8"), encode(a)) for a in articles))


def kafka_retriable(exc: BaseException) -> bool:
    """Whether ``exc`` means Kafka is away for now (a broker restarting, a leader moving)
    rather than a fault that retrying cannot fix: connection errors, timeouts, aiokafka's
    retriable errors (no leader, not the leader, ...), a bootstrap that failed, and an
    out-of-order sequence (a producer's state lost with the broker: a new producer fixes
    it). Refused credentials, oversize records and the like are not."""
    if isinstance(exc, KafkaAuthError):
        return False
    if isinstance(exc, KafkaUnavailableError | KafkaConnectionError | KafkaTimeoutError):
        return True
    if isinstance(exc, OutOfOrderSequenceNumber):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


#: Seconds a producer being abandoned may take to close.
ABANDON_TIMEOUT = 5.0


async def abandon(producer: AIOKafkaProducer) -> None:
    """Close a producer whose unsent records are not wanted anymore (the caller sends them
    again through a new producer): they are failed at once instead of being flushed to a
    broker that is away, and the close is bounded by ``ABANDON_TIMEOUT``. aiokafka has no public
    call for this, hence the private attributes, each guarded."""
    reason = KafkaConnectionError("producer abandoned: its records are sent again")
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        with contextlib.suppress(Exception):
            accumulator.fail_all(reason)
    try:
        await asyncio.wait_for(producer.stop(), ABANDON_TIMEOUT)
    except Exception:  # stop timed out or failed: make sure nothing of it keeps running
        sender = getattr(producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        if task is not None:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.client.close(), ABANDON_TIMEOUT)


def raw_publisher(
    producer: AIOKafkaProducer, topic: str
) -> Callable[[list[RawArticle]], Awaitable[int]]:
    """A publish callable for the poller: raw articles to ``topic`` through ``producer``."""

    async def publish(articles: list[RawArticle]) -> int:
        return await publish_raw(producer, topic, articles)

    return publish

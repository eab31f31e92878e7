"""What the server fixtures of tests/conftest.py (``stack``, ``opensearch``,
``secure_kafka``) return. Tests name these types under ``if TYPE_CHECKING:`` only."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.settings import Settings
from workshop.stack import LocalStack


@dataclass(frozen=True)
class StackEndpoints:
    """Where integration tests find Kafka and the search engine (Elasticsearch)."""

    kafka_bootstrap: str
    search_url: str
    settings: Settings
    local: LocalStack | None = None  # set when the fixture runs the local stack itself


@dataclass(frozen=True)
class SearchNodeEndpoint:
    """A second search node (OpenSearch) for the optional backend's contract tests."""

    url: str
    settings: Settings
    local: LocalStack | None = None


@dataclass(frozen=True)
class SecureKafka:
    """A broker with a SASL_SSL listener; ``settings`` connect to it with TLS (CA file,
    client certificate and encrypted key) and SCRAM-SHA-256."""

    settings: Settings
    plaintext_bootstrap: str
    local: LocalStack

"""The real worker (``newswire worker``, Faust) on a broker that requires TLS with client
certificates and SCRAM-SHA-256 (the ``secure_kafka`` fixture): an article published over
the secure listener goes raw -> enrich agent -> enriched topic -> sink agent -> the
session's Elasticsearch. The worker is given only the SASL_SSL port, so both agents, its
producer, its story table and Faust's own clients all connected with TLS and SCRAM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from pipeline.provision import run_setup
from pipeline.settings import Settings

if TYPE_CHECKING:
    from tests.plugins.endpoints import SecureKafka

pytestmark = pytest.mark.integration

SECURITY_FIELDS = (
    "kafka_bootstrap", "kafka_security_protocol", "kafka_ssl_cafile", "kafka_ssl_certfile",
    "kafka_ssl_keyfile", "kafka_ssl_key_password", "kafka_ssl_check_hostname",
    "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
)  # fmt: skip


def security_env(settings: Settings) -> dict[str, str]:
    """NEWSWIRE_KAFKA_* variables for the worker process (secrets revealed only here)."""
    env: dict[str, str] = {}
    for name in SECURITY_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            env[f"NEWSWIRE_{name.upper()}"] = str(value)
    return env


async def test_worker_enriches_and_indexes_over_tls_and_scram(
    stack: Any,
    secure_kafka: SecureKafka,
    tmp_path: Path,
    isolated: Any,
    read_topic: Any,
    worker_process: Any,
    make_articles: Any,
    publish: Any,
    wait_indexed: Any,
    index_count: Any,
) -> None:
    secure = {name: getattr(secure_kafka.settings, name) for name in SECURITY_FIELDS}
    settings = isolated(stack.settings.model_copy(update=secure), "secure-worker", batch_size=8)
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    sent = make_articles("secure", 5, seed=14)
    await run_setup(settings)  # admin over TLS + SCRAM: topics, and the index
    worker = worker_process(settings, tmp_path / "worker.log")
    worker.start(**security_env(settings))
    try:
        await publish(settings, sent)  # the producer over TLS + SCRAM
        await wait_indexed(settings, worker, len(sent), 240, "the articles to be indexed", 1)
        # The enriched records, read back through the broker's plaintext listener.
        enriched = await read_topic(
            secure_kafka.plaintext_bootstrap, settings.topic_enriched, len(sent)
        )
        assert sorted(r["id"] for r in enriched) == sorted(a.id for a in sent)
        assert all(r["entities"]["person"] for r in enriched), json.dumps(enriched[0])[:500]
        assert await index_count(settings) == len(sent)
        log_text = worker.log_file.read_text(errors="replace")
        assert "worker.fail_stop" not in log_text
        password = secure_kafka.settings.kafka_sasl_password
        assert password is not None and password.get_secret_value() not in log_text
        print(f"\n[secure-worker] sent={len(sent)} enriched={len(enriched)} indexed={len(sent)}")
    finally:
        worker.stop()

"""The local stack's endpoints file (pipeline.endpoints): written by the stack, read once by
the command line into the settings; runtime code only reads its settings."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.endpoints import (
    LocalEndpoints,
    apply_endpoints,
    endpoints_path,
    host_port,
    read_endpoints,
    remove_endpoints,
    resolve,
    write_endpoints,
)
from pipeline.errors import ConfigError
from pipeline.kafka.client import bootstrap
from pipeline.settings import Settings
from pipeline.sinks.engines import search_target


def _settings(home: Path, **values: object) -> Settings:
    """Nothing configured, whatever the environment of the test run says."""
    base: dict[str, object] = {
        "home": home,
        "kafka_bootstrap": None,
        "elasticsearch_url": None,
        "opensearch_url": None,
        "search_engine": "elasticsearch",
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that accepts connections (a broker that is up, as far as a
    connection tells)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_file_round_trip_and_removal(tmp_path: Path) -> None:
    endpoints = LocalEndpoints("127.0.0.1:1", "opensearch", "http://127.0.0.1:2", None)
    path = write_endpoints(tmp_path, endpoints)
    assert path == endpoints_path(tmp_path) == tmp_path.resolve() / "endpoints.json"
    assert json.loads(path.read_text()) == {
        "kafka_bootstrap": "127.0.0.1:1",
        "search_engine": "opensearch",
        "search_url": "http://127.0.0.1:2",
        "corenlp_url": None,
    }
    assert read_endpoints(tmp_path) == endpoints
    remove_endpoints(tmp_path)
    assert read_endpoints(tmp_path) is None
    remove_endpoints(tmp_path)  # nothing to remove is fine


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        '{"kafka_bootstrap": 5}',
        '{"search_url": "http://127.0.0.1:2", "search_engine": "solr"}',
    ],
)
def test_a_file_that_is_not_an_endpoints_object_is_ignored(tmp_path: Path, content: str) -> None:
    endpoints_path(tmp_path).write_text(content)
    assert read_endpoints(tmp_path) is None
    settings = _settings(tmp_path)
    assert resolve(settings) is settings


def test_host_port_of_urls_and_bootstrap_lists() -> None:
    assert host_port("http://127.0.0.1:9200/") == ("127.0.0.1", 9200)
    assert host_port("127.0.0.1:9092,127.0.0.1:9093") == ("127.0.0.1", 9092)
    assert host_port("no-port") is None
    assert host_port("127.0.0.1:notaport") is None


def test_configured_values_win_and_the_engine_follows_the_stack(tmp_path: Path) -> None:
    endpoints = LocalEndpoints("127.0.0.1:1", "opensearch", "http://127.0.0.1:2", None)
    filled = apply_endpoints(_settings(tmp_path), endpoints)
    assert filled.kafka_bootstrap == "127.0.0.1:1"
    assert filled.opensearch_url == "http://127.0.0.1:2"
    assert filled.search_engine == "opensearch"
    assert search_target(filled) == ("opensearch", "http://127.0.0.1:2")
    configured = _settings(
        tmp_path, kafka_bootstrap="kafka:9092", elasticsearch_url="http://es:9200"
    )
    assert apply_endpoints(configured, endpoints) is configured


def test_a_service_that_is_down_keeps_its_endpoint_while_another_answers(
    tmp_path: Path, listener: int
) -> None:
    """Broker up, search node down: both endpoints are used, so the worker meets a
    retryable connection error at the node and waits for it (not a missing setting)."""
    down = f"http://127.0.0.1:{_closed_port()}"
    write_endpoints(tmp_path, LocalEndpoints(f"127.0.0.1:{listener}", "elasticsearch", down))
    resolved = resolve(_settings(tmp_path))
    assert bootstrap(resolved) == f"127.0.0.1:{listener}"
    assert search_target(resolved) == ("elasticsearch", down)


def test_a_stale_file_is_ignored_and_the_errors_say_what_to_do(tmp_path: Path) -> None:
    """Nothing of the stack answers (a reboot, a crash): as if there were no stack."""
    write_endpoints(
        tmp_path,
        LocalEndpoints(
            f"127.0.0.1:{_closed_port()}", "elasticsearch", f"http://127.0.0.1:{_closed_port()}"
        ),
    )
    settings = _settings(tmp_path)
    resolved = resolve(settings)
    assert resolved is settings
    with pytest.raises(ConfigError, match="no Kafka configured"):
        bootstrap(resolved)
    with pytest.raises(ConfigError, match="no search engine configured"):
        search_target(resolved)


def test_a_stack_without_kafka_still_gives_the_search_node(tmp_path: Path, listener: int) -> None:
    write_endpoints(tmp_path, LocalEndpoints(None, "elasticsearch", f"http://127.0.0.1:{listener}"))
    resolved = resolve(_settings(tmp_path))
    assert resolved.elasticsearch_url == f"http://127.0.0.1:{listener}"
    with pytest.raises(ConfigError, match="no Kafka configured"):
        bootstrap(resolved)

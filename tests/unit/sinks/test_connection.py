"""Options the search clients are built with (pipeline/sinks/connection.py): auth, and TLS
(CA file, pinned fingerprint, verification on by default) for https URLs only."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.sinks.connection import elasticsearch_options, opensearch_options

FINGERPRINT = "ab:" * 31 + "cd"
PASSWORD = "es-" + "secret"


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("not read by the option builder\n")
    return path


def test_http_gets_no_tls_options() -> None:
    settings = Settings(elasticsearch_username="newswire_writer", elasticsearch_password=PASSWORD)
    options = elasticsearch_options(settings, "http://127.0.0.1:9200")
    assert options == {
        "request_timeout": 30,
        "retry_on_timeout": True,
        "basic_auth": ("newswire_writer", PASSWORD),
    }


def test_https_verifies_by_default_with_ca_and_fingerprint(ca_file: Path) -> None:
    settings = Settings(
        elasticsearch_api_key="key-id:key",
        elasticsearch_ca_file=ca_file,
        elasticsearch_ssl_fingerprint=FINGERPRINT,
    )
    options = elasticsearch_options(settings, "https://es.example:9200")
    assert options["verify_certs"] is True
    assert options["ca_certs"] == str(ca_file)
    assert options["ssl_assert_fingerprint"] == ("AB" * 31 + "CD")
    assert options["api_key"] == "key-id:key" and "basic_auth" not in options
    assert "ssl_show_warn" not in options


def test_the_official_client_accepts_the_options(ca_file: Path) -> None:
    from elasticsearch import AsyncElasticsearch

    settings = Settings(elasticsearch_ssl_fingerprint=FINGERPRINT, elasticsearch_verify_certs=False)
    client = AsyncElasticsearch(
        "https://127.0.0.1:9200", **elasticsearch_options(settings, "https://127.0.0.1:9200")
    )
    config = client.transport.node_pool.all()[0].config
    assert config.verify_certs is False
    assert config.ssl_assert_fingerprint == "AB" * 31 + "CD"


def test_tls_settings_with_an_http_url_are_an_error(ca_file: Path) -> None:
    settings = Settings(elasticsearch_ca_file=ca_file)
    with pytest.raises(ConfigError, match="NEWSWIRE_ELASTICSEARCH_CA_FILE need"):
        elasticsearch_options(settings, "http://127.0.0.1:9200")


@pytest.mark.parametrize("bad", ["abc", "zz" * 32, "ab" * 20])
def test_bad_fingerprint_is_named(bad: str) -> None:
    settings = Settings(elasticsearch_ssl_fingerprint=bad)
    with pytest.raises(ConfigError, match="NEWSWIRE_ELASTICSEARCH_SSL_FINGERPRINT"):
        elasticsearch_options(settings, "https://127.0.0.1:9200")


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    settings = Settings(elasticsearch_ca_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="NEWSWIRE_ELASTICSEARCH_CA_FILE="):
        elasticsearch_options(settings, "https://127.0.0.1:9200")


def test_opensearch_gets_the_ca_file(ca_file: Path) -> None:
    settings = Settings(
        opensearch_username="admin", opensearch_password=PASSWORD, opensearch_ca_file=ca_file
    )
    options = opensearch_options(settings, "https://127.0.0.1:9200")
    assert options["use_ssl"] is True and options["verify_certs"] is True
    assert options["ca_certs"] == str(ca_file)
    assert options["http_auth"] == ("admin", PASSWORD)
    plain = opensearch_options(Settings(), "http://127.0.0.1:9200")
    assert "use_ssl" not in plain and "ca_certs" not in plain
    with pytest.raises(ConfigError, match="NEWSWIRE_OPENSEARCH_CA_FILE"):
        opensearch_options(settings, "http://127.0.0.1:9200")

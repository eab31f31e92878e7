"""How the search clients connect: authentication and TLS options from Settings (pure).

TLS options only go with ``https`` URLs (the clients refuse them for ``http``); certificate
verification stays on unless NEWSWIRE_ELASTICSEARCH_VERIFY_CERTS=false says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings

_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{64}$")


def _is_https(url: str) -> bool:
    return url.lower().startswith("https://")


def _fingerprint(value: str) -> str:
    """A SHA-256 fingerprint as the client wants it: 64 hex digits (colons dropped)."""
    digits = value.replace(":", "").strip()
    if not _FINGERPRINT.match(digits):
        raise ConfigError(
            "NEWSWIRE_ELASTICSEARCH_SSL_FINGERPRINT must be the certificate's SHA-256 "
            "fingerprint: 64 hex digits, colons allowed"
        )
    return digits.upper()


def elasticsearch_options(settings: Settings, url: str) -> dict[str, Any]:
    """Keyword arguments for ``AsyncElasticsearch(url, ...)``: timeouts, API key or basic
    auth, and for https the CA file, the pinned fingerprint and ``verify_certs``."""
    options: dict[str, Any] = {"request_timeout": 30, "retry_on_timeout": True}
    if settings.elasticsearch_api_key:
        options["api_key"] = settings.elasticsearch_api_key.get_secret_value()
    elif settings.elasticsearch_username and settings.elasticsearch_password:
        options["basic_auth"] = (
            settings.elasticsearch_username,
            settings.elasticsearch_password.get_secret_value(),
        )
    tls_given = [
        name
        for name, value in (
            ("NEWSWIRE_ELASTICSEARCH_CA_FILE", settings.elasticsearch_ca_file),
            ("NEWSWIRE_ELASTICSEARCH_SSL_FINGERPRINT", settings.elasticsearch_ssl_fingerprint),
        )
        if value
    ]
    if not _is_https(url):
        if tls_given:
            raise ConfigError(f"{' and '.join(tls_given)} need an https:// Elasticsearch URL")
        return options
    options["verify_certs"] = settings.elasticsearch_verify_certs
    if settings.elasticsearch_ca_file is not None:
        options["ca_certs"] = _ca_file("ELASTICSEARCH", settings.elasticsearch_ca_file)
    if settings.elasticsearch_ssl_fingerprint:
        options["ssl_assert_fingerprint"] = _fingerprint(settings.elasticsearch_ssl_fingerprint)
    if not settings.elasticsearch_verify_certs:
        options["ssl_show_warn"] = False  # the setting said so; warned once in the log
    return options


def _ca_file(engine: str, path: Path) -> str:
    """The CA file's path, or a ConfigError naming its setting when it does not exist."""
    if not path.is_file():
        raise ConfigError(f"NEWSWIRE_{engine}_CA_FILE={path}: no such file")
    return str(path)


def opensearch_options(settings: Settings, url: str) -> dict[str, Any]:
    """Keyword arguments for ``AsyncOpenSearch(hosts=[url], ...)``: timeouts, basic auth,
    and for https ``use_ssl``, ``verify_certs`` and the CA file."""
    options: dict[str, Any] = {"timeout": 30, "retry_on_timeout": True}
    if settings.opensearch_username and settings.opensearch_password:
        options["http_auth"] = (
            settings.opensearch_username,
            settings.opensearch_password.get_secret_value(),
        )
    if not _is_https(url):
        if settings.opensearch_ca_file is not None:
            raise ConfigError("NEWSWIRE_OPENSEARCH_CA_FILE needs an https:// OpenSearch URL")
        return options
    options["use_ssl"] = True
    options["verify_certs"] = settings.elasticsearch_verify_certs
    if settings.opensearch_ca_file is not None:
        options["ca_certs"] = _ca_file("OPENSEARCH", settings.opensearch_ca_file)
    if not settings.elasticsearch_verify_certs:
        options["ssl_show_warn"] = False
    return options


__all__ = ["elasticsearch_options", "opensearch_options"]

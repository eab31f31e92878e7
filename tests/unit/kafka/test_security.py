"""The Kafka connection options built from Settings (pipeline/kafka/security.py), and the
Faust app's broker credentials; the real TLS + SCRAM round trip is in
tests/integration/kafka/test_security.py."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust
import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError
from pipeline.kafka.security import (
    client_options,
    describe,
    faust_broker_options,
    plan,
    security_options,
)
from pipeline.settings import Settings

if TYPE_CHECKING:  # types only: the ``pki`` fixture comes from the tests.plugins.pki plugin
    from tests.plugins.pki import Pki

PASSWORD = "pw-" + "never-printed"


def _secure(pki: Pki, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_ssl_cafile": pki.ca,
        "kafka_ssl_certfile": pki.client_cert,
        "kafka_ssl_keyfile": pki.client_key,
        "kafka_ssl_key_password": pki.client_key_password,
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "alice",
        "kafka_sasl_password": PASSWORD,
        **extra,
    }
    return Settings(**values)


def test_plaintext_default_is_unchanged() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9092")
    assert security_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert client_options(settings) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_broker_options(settings) == {}


def test_sasl_ssl_options(pki: Pki) -> None:
    options = security_options(_secure(pki))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "alice"
    assert options["sasl_plain_password"] == PASSWORD
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    # Only the given CA is trusted, not the system's.
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "Newswire test CA"),),)
    ]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_mechanisms(mechanism: str) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,  # type: ignore[arg-type]
        kafka_sasl_username="bob",
        kafka_sasl_password=SecretStr(PASSWORD),
    )
    options = security_options(settings)
    assert options["sasl_mechanism"] == mechanism
    assert "ssl_context" not in options


def test_ssl_only_with_client_certificate(pki: Pki) -> None:
    settings = _secure(
        pki, kafka_security_protocol="SSL", kafka_sasl_username=None, kafka_sasl_password=None
    )
    options = security_options(settings)
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options
    credentials = faust_broker_options(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)


def test_faust_app_carries_the_credentials(pki: Pki, tmp_path: Path) -> None:
    from pipeline.worker.app import create_app

    settings = _secure(pki, home=tmp_path, worker_web_port=0)
    app = create_app(settings, worker=object())  # type: ignore[arg-type]
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "alice" and credentials.password == PASSWORD
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert PASSWORD not in repr(credentials)
    # What Faust's aiokafka driver hands to its consumers and producers.
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "alice"


def test_wrong_key_password_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError) as failure:
        security_options(_secure(pki, kafka_ssl_key_password="wrong-" + PASSWORD))
    assert PASSWORD not in str(failure.value)
    assert "NEWSWIRE_KAFKA_SSL_KEY_PASSWORD" in str(failure.value)


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "NEWSWIRE_KAFKA_SASL_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "alice"},
            "NEWSWIRE_KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_ssl_cafile": "/etc/ca.pem"}, "NEWSWIRE_KAFKA_SSL_CAFILE"),
        (
            {"kafka_sasl_username": "alice", "kafka_sasl_password": PASSWORD},
            "does not use SASL",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"},
            "NEWSWIRE_KAFKA_SSL_CERTFILE",
        ),
    ],
)
def test_combinations_that_cannot_work(values: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=names) as failure:
        plan(Settings(**values))
    assert PASSWORD not in str(failure.value)


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"NEWSWIRE_KAFKA_SSL_CAFILE=.*nope\.pem"):
        security_options(settings)


def test_describe_never_shows_secrets(pki: Pki) -> None:
    info = describe(_secure(pki))
    assert info == {
        "protocol": "SASL_SSL",
        "cafile": str(pki.ca),
        "client_cert": True,
        "mechanism": "SCRAM-SHA-512",
        "username": "alice",
    }
    assert PASSWORD not in repr(info) and pki.client_key_password not in repr(info)
    assert PASSWORD not in repr(_secure(pki))

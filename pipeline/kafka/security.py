"""How every Kafka client of Newswire connects: bootstrap servers, TLS and SASL.

One place builds the connection options from :class:`~pipeline.settings.Settings`, so the
producers, consumers and admin clients (``client_options``) and the Faust worker
(``faust_broker_options``) can never disagree. :func:`plan` is the pure part (which options,
checked for combinations that cannot work); the SSL context is built from the files after.
Secrets stay ``SecretStr`` until the client is made and :func:`describe` (for logs) never
contains them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The security part of a Kafka connection, checked; secrets are not in its repr."""

    protocol: str
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True
    mechanism: str | None = None
    username: str | None = None

    @property
    def tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS


def plan(settings: Settings) -> KafkaSecurity:
    """The security options ``settings`` ask for; ConfigError for combinations that would
    silently not do what they say (TLS files on a plaintext protocol, SASL without a user)."""
    protocol = settings.kafka_security_protocol
    tls = protocol in TLS_PROTOCOLS
    sasl = protocol in SASL_PROTOCOLS
    files = {
        "NEWSWIRE_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "NEWSWIRE_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "NEWSWIRE_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
        "NEWSWIRE_KAFKA_SSL_KEY_PASSWORD": settings.kafka_ssl_key_password,
    }
    given = [name for name, value in files.items() if value is not None]
    if given and not tls:
        raise ConfigError(
            f"{', '.join(given)} set but NEWSWIRE_KAFKA_SECURITY_PROTOCOL={protocol} does not "
            "use TLS: set it to SSL or SASL_SSL"
        )
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise ConfigError(
            "NEWSWIRE_KAFKA_SSL_KEYFILE needs NEWSWIRE_KAFKA_SSL_CERTFILE (the client certificate)"
        )
    user, password = settings.kafka_sasl_username, settings.kafka_sasl_password
    if sasl and (not user or password is None):
        raise ConfigError(
            f"NEWSWIRE_KAFKA_SECURITY_PROTOCOL={protocol} needs NEWSWIRE_KAFKA_SASL_USERNAME "
            "and NEWSWIRE_KAFKA_SASL_PASSWORD"
        )
    if not sasl and (user or password is not None):
        raise ConfigError(
            "NEWSWIRE_KAFKA_SASL_USERNAME/PASSWORD set but NEWSWIRE_KAFKA_SECURITY_PROTOCOL="
            f"{protocol} does not use SASL: set it to SASL_SSL (or SASL_PLAINTEXT)"
        )
    return KafkaSecurity(
        protocol=protocol,
        cafile=settings.kafka_ssl_cafile if tls else None,
        certfile=settings.kafka_ssl_certfile if tls else None,
        keyfile=settings.kafka_ssl_keyfile if tls else None,
        check_hostname=settings.kafka_ssl_check_hostname,
        mechanism=settings.kafka_sasl_mechanism if sasl else None,
        username=user if sasl else None,
    )


def describe(settings: Settings) -> dict[str, Any]:
    """The connection's security for a log line: never a password."""
    security = plan(settings)
    info: dict[str, Any] = {"protocol": security.protocol}
    if security.tls:
        info["cafile"] = str(security.cafile) if security.cafile else "system"
        info["client_cert"] = security.certfile is not None
    if security.sasl:
        info["mechanism"] = security.mechanism
        info["username"] = security.username
    return info


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``settings`` (None without TLS); unreadable files or a wrong key
    password become a ConfigError naming the setting, not the secret."""
    security = plan(settings)
    if not security.tls:
        return None
    for name, path in (
        ("NEWSWIRE_KAFKA_SSL_CAFILE", security.cafile),
        ("NEWSWIRE_KAFKA_SSL_CERTFILE", security.certfile),
        ("NEWSWIRE_KAFKA_SSL_KEYFILE", security.keyfile),
    ):
        if path is not None and not path.is_file():
            raise ConfigError(f"{name}={path}: no such file")
    try:
        # With a CA file, only that CA is trusted (the system CAs are not loaded).
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(security.cafile) if security.cafile else None
        )
        if security.certfile is not None:
            secret = settings.kafka_ssl_key_password
            context.load_cert_chain(
                certfile=str(security.certfile),
                keyfile=str(security.keyfile) if security.keyfile else None,
                password=secret.get_secret_value() if secret is not None else None,
            )
    except ssl.SSLError as exc:
        raise ConfigError(
            "cannot load the Kafka TLS files (NEWSWIRE_KAFKA_SSL_CAFILE / CERTFILE / KEYFILE; a "
            f"wrong NEWSWIRE_KAFKA_SSL_KEY_PASSWORD?): {exc.reason or exc}"
        ) from None
    context.check_hostname = security.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def security_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for TLS and SASL (``security_protocol``, ``ssl_context``,
    ``sasl_*``); only ``security_protocol`` for PLAINTEXT."""
    security = plan(settings)
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.tls:
        options["ssl_context"] = ssl_context(settings)
    if security.sasl:
        assert settings.kafka_sasl_password is not None  # plan() checked it
        options["sasl_mechanism"] = security.mechanism
        options["sasl_plain_username"] = security.username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def bootstrap(settings: Settings) -> str:
    """The Kafka bootstrap servers of the settings (configured, or the local stack's as the
    command line resolved them from its endpoints file, see pipeline.endpoints)."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    raise ConfigError(
        "no Kafka configured: set NEWSWIRE_KAFKA_BOOTSTRAP or start the local stack "
        "with `newswire stack up` (a local Kafka that is not running is not used)"
    )


def client_options(settings: Settings, servers: str | None = None) -> dict[str, Any]:
    """``bootstrap_servers`` and the security options: the keyword arguments every
    AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient of Newswire starts from."""
    return {"bootstrap_servers": servers or bootstrap(settings), **security_options(settings)}


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """The Faust app settings for the same connection: ``broker_credentials`` (SASL, with
    the TLS context for SASL_SSL; or the TLS context alone for SSL), nothing for PLAINTEXT."""
    import faust

    security = plan(settings)
    context = ssl_context(settings)
    if security.sasl:
        assert settings.kafka_sasl_password is not None
        credentials: Any = faust.SASLCredentials(
            username=security.username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=security.mechanism,
        )
        return {"broker_credentials": credentials}
    if context is not None:
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {}


__all__ = [
    "KafkaSecurity",
    "bootstrap",
    "client_options",
    "describe",
    "faust_broker_options",
    "plan",
    "security_options",
    "ssl_context",
]

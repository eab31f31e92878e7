"""One root exception; subclasses carry what a caller needs to react."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NewswireError(Exception):
    """Root of every error Newswire raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (the poller's parse pool). The default pickling
        # calls cls(message), which breaks subclasses with other arguments and with them
        # the whole ProcessPoolExecutor; rebuild from the message and the attributes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[NewswireError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(NewswireError):
    """Settings or input files that cannot work as given."""


class MissingDependencyError(NewswireError):
    """An optional dependency or system tool is absent; ``install`` says what to install."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} is not available: {install}")
        self.what = what
        self.install = install


class StackError(NewswireError):
    """The local Kafka / search stack could not be started, stopped or reached."""

    def __init__(self, message: str, log_file: Path | None = None) -> None:
        hint = f" (see {log_file})" if log_file else ""
        super().__init__(f"{message}{hint}")
        self.log_file = log_file


class KafkaUnavailableError(NewswireError):
    """Kafka did not answer at the configured bootstrap servers."""

    def __init__(self, bootstrap: str, reason: str) -> None:
        super().__init__(
            f"Kafka at {bootstrap} is unreachable ({reason}); start the local stack with "
            "`newswire stack up` or set NEWSWIRE_KAFKA_BOOTSTRAP"
        )
        self.bootstrap = bootstrap


class KafkaAuthError(KafkaUnavailableError):
    """Kafka refused the connection's credentials or TLS handshake (wrong password, unknown
    user, untrusted certificate): retrying will not help, the settings must change."""

    def __init__(self, bootstrap: str, reason: str, user: str | None = None) -> None:
        who = f" for user {user!r}" if user else ""
        NewswireError.__init__(
            self,
            f"Kafka at {bootstrap} refused the connection{who}: {reason}; check "
            "NEWSWIRE_KAFKA_SECURITY_PROTOCOL, NEWSWIRE_KAFKA_SASL_MECHANISM / USERNAME / "
            "PASSWORD and NEWSWIRE_KAFKA_SSL_* ",
        )
        self.bootstrap = bootstrap
        self.reason = reason
        self.user = user


class BadInputError(NewswireError):
    """A file, feed or record that cannot be turned into an article."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class SearchBackendError(NewswireError):
    """The search engine refused or failed a request."""


class RetryableError(SearchBackendError):
    """A failure worth retrying (429, 5xx, timeouts); ``retry_after`` in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RecogniserUnavailableError(RetryableError):
    """The entity recogniser's server (CoreNLP) is down, too slow or failing: retry later.

    Nothing is enriched without entities: the worker waits ``retry_after`` seconds and tries
    the same batch again."""

    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"entity recogniser at {url} is unavailable: {reason}", retry_after)
        self.url = url
        self.reason = reason


class HandedBackError(NewswireError):
    """The worker is stopping while a batch waits (for the search engine, the recogniser):
    the batch is handed back unacknowledged, so Kafka redelivers it to the next worker."""

    def __init__(self, stage: str, waiting_for: str) -> None:
        super().__init__(f"{stage}: stopping while waiting for {waiting_for}; batch handed back")
        self.stage = stage
        self.waiting_for = waiting_for


class PermanentIndexError(SearchBackendError):
    """A document the index will never accept (mapping errors); it belongs in the DLQ."""

    def __init__(self, doc_id: str, reason: str) -> None:
        super().__init__(f"{doc_id}: {reason}")
        self.doc_id = doc_id
        self.reason = reason


class FetchError(NewswireError):
    """A feed fetch failed; ``retry_after`` is set when the server said when to return."""

    def __init__(
        self, url: str, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class QuerySyntaxError(ConfigError):
    """A search or standing query the query language refuses; ``position`` is 0-based."""

    def __init__(self, query: str, reason: str, position: int) -> None:
        pointer = f"\n  {query}\n  {' ' * position}^"
        super().__init__(f"invalid query at position {position}: {reason}{pointer}")
        self.query = query
        self.reason = reason
        self.position = position

"""The search-engine connector interface both backends implement (the factory that picks
one is :mod:`pipeline.sinks.engines`, so the backends depend on this module and not back)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

from pipeline.errors import SearchBackendError

P = ParamSpec("P")
T = TypeVar("T")
Method = Callable[P, Coroutine[Any, Any, T]]
#: The bulk API's ``refresh``: "false" (searchable at the index's next scheduled refresh),
#: "true" (the shards written are refreshed before the answer: searchable once
#: acknowledged), "wait_for" (the answer waits for the next scheduled refresh).
RefreshPolicy = Literal["false", "true", "wait_for"]


def translate_errors(
    errors: tuple[type[Exception], ...], wrap: Callable[[Exception], SearchBackendError]
) -> Callable[[Method[P, T]], Method[P, T]]:
    """A decorator turning a client's ``errors`` into Newswire's (retryable or not)."""

    def decorator(
        method: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await method(*args, **kwargs)
            except errors as exc:
                raise wrap(exc) from exc

        return wrapper

    return decorator


def pick_write_index(alias: str, answer: dict[str, Any]) -> str:
    """The write index in a ``GET _alias/<alias>`` answer (the only index, or the one with
    ``is_write_index``)."""
    indices = sorted(answer)
    for name in indices:
        if (answer[name].get("aliases", {}).get(alias) or {}).get("is_write_index"):
            return name
    if len(indices) == 1:
        return indices[0]
    raise SearchBackendError(f"alias {alias} has {len(indices)} indices and no write index")


class SearchBackend(Protocol):
    """The few calls Newswire makes; the request bodies are shared by both engines."""

    engine: str
    url: str

    async def info(self) -> dict[str, Any]: ...
    async def has_analyzer(self, name: str) -> bool: ...
    async def put_component_template(self, name: str, body: dict[str, Any]) -> None: ...
    async def put_index_template(self, name: str, body: dict[str, Any]) -> None: ...
    async def alias_exists(self, alias: str) -> bool: ...
    async def create_index(self, name: str, body: dict[str, Any]) -> None: ...
    async def put_mapping(self, index: str, body: dict[str, Any]) -> None: ...
    async def bulk(
        self, operations: list[dict[str, Any]], refresh: RefreshPolicy = "false"
    ) -> dict[str, Any]: ...
    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def analyze(self, index: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def mget(self, index: str, ids: list[str]) -> list[dict[str, Any]]: ...
    async def write_index(self, alias: str) -> str: ...
    async def msearch(self, index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]: ...
    async def mtermvectors(self, index: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def count(self, index: str, body: dict[str, Any] | None = None) -> int: ...
    async def refresh(self, index: str) -> None: ...
    async def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None: ...
    async def close(self) -> None: ...

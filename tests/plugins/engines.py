"""pytest plugin: ``engine_settings``, a test's isolated settings on each search engine.

A test taking it runs on the session's Elasticsearch and again on the OpenSearch node (the
optional backend keeps the same contract); ``engine_settings.engine`` says which, and
``engine_settings.snapshot_dir`` is that node's ``path.repo`` (None for a node not started
by the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from tests.plugins.kafka_helpers import isolated


class EngineSettings:
    """Makes isolated settings for one engine (``__call__(name, **extra)``)."""

    def __init__(self, request: pytest.FixtureRequest, stack: Any) -> None:
        self.engine: str = request.param
        self._request = request
        self._stack = stack

    def _node(self) -> Any:
        return self._request.getfixturevalue("opensearch")

    @property
    def snapshot_dir(self) -> Path | None:
        if self.engine == "opensearch":
            node = self._node()
            return None if node.local is None else node.settings.home.resolve() / "opensearch"
        local = self._stack.local
        return None if local is None else self._stack.settings.home.resolve() / "elasticsearch"

    def __call__(self, name: str, **extra: Any) -> Settings:
        if self.engine == "opensearch":
            return isolated(
                self._stack.settings,
                name,
                search_engine="opensearch",
                elasticsearch_url=None,
                opensearch_url=self._node().url,
                **extra,
            )
        return isolated(self._stack.settings, name, opensearch_url=None, **extra)


@pytest.fixture(params=["elasticsearch", "opensearch"])
def engine_settings(request: pytest.FixtureRequest, stack: Any) -> EngineSettings:
    return EngineSettings(request, stack)

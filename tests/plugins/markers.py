"""Every test that uses a server fixture carries a marker saying so (``integration``,
``e2e`` or ``eval``), so ``-m "not integration"`` never starts a server by surprise."""

from __future__ import annotations

import pytest

# Session fixtures that start (or connect to) real servers.
SERVER_FIXTURES = frozenset(
    {"stack", "opensearch", "corenlp_url", "secure_kafka", "restartable_broker", "cluster"}
)
SERVER_MARKERS = ("integration", "e2e", "eval", "cluster")


def unmarked_server_tests(items: list[pytest.Item]) -> list[str]:
    """Node ids of the tests that use a server fixture without a server marker."""
    return [
        item.nodeid
        for item in items
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not any(item.get_closest_marker(name) for name in SERVER_MARKERS)
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = unmarked_server_tests(items)
    if unmarked:
        raise pytest.UsageError(
            "tests that start servers must be marked integration, e2e, eval or cluster: "
            + ", ".join(unmarked)
        )

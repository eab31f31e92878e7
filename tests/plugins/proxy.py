"""A loopback TCP proxy a test can cut and restore (tests/fixtures/tcp_proxy.py), as a
fixture: ``tcp_proxy((host, port))`` starts one in front of that server on the test port
block's proxy port (base + 720) and stops it when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.tcp_proxy import TcpProxy

PROXY_OFFSET = 720  # one of tests/conftest.py's PORT_OFFSETS


@pytest.fixture
def tcp_proxy(test_port_base: int) -> Iterator[Callable[[tuple[str, int]], TcpProxy]]:
    """A factory: ``tcp_proxy(upstream)`` is a started proxy to ``upstream`` (one at a time:
    they share the port)."""
    started: list[TcpProxy] = []

    def start(upstream: tuple[str, int]) -> TcpProxy:
        proxy = TcpProxy(upstream, test_port_base + PROXY_OFFSET).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()

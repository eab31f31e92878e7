"""SSRF guard of feed and page URLs."""

from __future__ import annotations

import pytest

from pipeline.sources.safety import UnsafeURLError, address_problem, check_url


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.1", True), ("172.16.0.1", True),
        ("169.254.169.254", True), ("::1", True), ("fe80::1", True), ("fc00::1", True),
        ("::ffff:127.0.0.1", True), ("0.0.0.0", True), ("100.64.0.1", True),
        ("8.8.8.8", False), ("2606:4700:4700::1111", False),
    ],
)  # fmt: skip
def test_address_classification(address: str, refused: bool) -> None:
    assert (address_problem(address) is not None) is refused


def test_check_url() -> None:
    for bad in ("file:///etc/passwd", "ftp://a.test/x", "http://127.0.0.1/x", "http://localhost/x",
                "http://[::1]/x", "http://user:pw@a.test/x", "gopher://a.test"):  # fmt: skip
        with pytest.raises(UnsafeURLError):
            check_url(bad, allow_private=False)
    check_url("https://example.org/rss", allow_private=False)
    check_url("http://127.0.0.1:8080/x", allow_private=True)
    with pytest.raises(UnsafeURLError):
        check_url("file:///etc/passwd", allow_private=True)

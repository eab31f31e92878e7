"""The CoreNLP client against the real CoreNLP server (started by the ``corenlp_url`` fixture)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.enrich.corenlp import CoreNLPRecogniser
from pipeline.enrich.enricher import Enricher
from pipeline.errors import RecogniserUnavailableError, RetryableError
from pipeline.models import RawArticle

pytestmark = pytest.mark.integration

TEXTS = [
    "John Kerry met Sergei Lavrov in Geneva on Monday.",
    "",
    "Shares in Goldman Sachs rose in New York 😀 as Angela Merkel spoke.",
    "no names here at all",
    "Ozzy Osbourne and Sharon Osbourne live in Los Angeles",
]


def _names(text: str, spans: list[object]) -> list[tuple[str, str]]:
    return [(s.label, text[s.start : s.end]) for s in spans]  # type: ignore[attr-defined]


def test_batch_is_split_back_per_text_with_exact_offsets(corenlp_url: str) -> None:
    recogniser = CoreNLPRecogniser(corenlp_url)
    result = recogniser.spans(TEXTS)
    assert len(result) == len(TEXTS)
    assert _names(TEXTS[0], result[0]) == [
        ("PERSON", "John Kerry"),
        ("PERSON", "Sergei Lavrov"),
        ("LOCATION", "Geneva"),
    ]
    assert result[1] == [] and result[3] == []
    # offsets stay right after a character outside the BMP (Java counts UTF-16 units)
    assert ("PERSON", "Angela Merkel") in _names(TEXTS[2], result[2])
    assert ("ORGANIZATION", "Goldman Sachs") in _names(TEXTS[2], result[2])
    assert ("PERSON", "Ozzy Osbourne") in _names(TEXTS[4], result[4])


def test_small_requests_give_the_same_spans(corenlp_url: str) -> None:
    one = CoreNLPRecogniser(corenlp_url).spans(TEXTS)
    many = CoreNLPRecogniser(corenlp_url, max_request_chars=40).spans(TEXTS)
    assert one == many


def test_enricher_uses_the_server(corenlp_url: str) -> None:
    enricher = Enricher(recogniser=CoreNLPRecogniser(corenlp_url))
    [result] = enricher.enrich(
        [RawArticle(id="a", title="Kerry in Moscow", body="John Kerry met Vladimir Putin.")]
    )
    assert result.entities.person == ["John Kerry", "Vladimir Putin"]
    assert result.entities.location == ["Moscow"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_outage_is_retryable() -> None:
    recogniser = CoreNLPRecogniser(f"http://127.0.0.1:{_free_port()}/", timeout=2.0)
    assert not recogniser.available()
    with pytest.raises(RecogniserUnavailableError) as info:
        recogniser.spans(["John Kerry"])
    assert isinstance(info.value, RetryableError)
    assert info.value.retry_after and info.value.retry_after > 0


def test_timeout_is_retryable(corenlp_url: str) -> None:
    recogniser = CoreNLPRecogniser(corenlp_url, timeout=0.001)
    with pytest.raises(RecogniserUnavailableError, match="no answer"):
        recogniser.spans(["John Kerry met Sergei Lavrov. " * 2000])


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


def test_local_server_refuses_non_loopback_clients(corenlp_url: str) -> None:
    import httpx

    if "127.0.0.1" not in corenlp_url:
        pytest.skip("not the local stack's server")
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to test from")
    port = corenlp_url.rstrip("/").rsplit(":", 1)[1]
    reply = httpx.post(f"http://{address}:{port}/", content=b"John Kerry", timeout=10)
    assert reply.status_code == 401


def test_two_real_servers_share_the_requests_and_agree(
    corenlp_url: str, second_corenlp_url: str
) -> None:
    first, second = CoreNLPRecogniser(corenlp_url), CoreNLPRecogniser(second_corenlp_url)
    one = first.spans(TEXTS)
    # A fresh JVM is slow at first, and the pool rightly sends fewer requests to a slow
    # replica: warm the second server until it answers about as fast as the first (on a
    # busy machine five calls were not enough: 24 against 6), then measure the spread.
    for tries in range(60):
        started = time.perf_counter()
        first.spans(TEXTS)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        assert second.spans(TEXTS) == one
        if tries >= 4 and time.perf_counter() - started <= 1.5 * first_s:
            break
    both = CoreNLPRecogniser([corenlp_url, second_corenlp_url], max_request_chars=80)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: both.spans(TEXTS), range(20)))
    assert all(result == one for result in results)
    served = both.pool.requests()
    assert min(served.values()) >= sum(served.values()) // 4, served


def test_a_dead_real_server_fails_over_to_the_live_one(
    corenlp_url: str, second_corenlp_url: str
) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/"
    recogniser = CoreNLPRecogniser([dead, second_corenlp_url], timeout=30.0)
    expected = CoreNLPRecogniser(corenlp_url).spans(TEXTS)
    for _ in range(3):
        assert recogniser.spans(TEXTS) == expected
    assert recogniser.pool.is_down(dead)
    assert recogniser.pool.requests()[dead] == 1  # asked once, then left alone in its cool-down

"""Balancing CoreNLP requests over replicas: the pure pool, and the client against loopback
HTTP servers that stand in for CoreNLP only to count requests and fail on demand (the real
server's answers are tested in tests/integration/test_corenlp.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.enrich.corenlp import CoreNLPRecogniser
from pipeline.enrich.endpoints import EndpointPool, expand, parse_urls
from pipeline.errors import ConfigError, RecogniserUnavailableError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


A, B, C = "http://127.0.0.1:1/", "http://127.0.0.1:2/", "http://127.0.0.1:3/"


def test_parse_urls_takes_lists_and_refuses_garbage() -> None:
    assert parse_urls("http://a:9000") == ["http://a:9000/"]
    assert parse_urls("http://a:9000/, http://b:9000/ http://a:9000/") == [
        "http://a:9000/",
        "http://b:9000/",
    ]
    with pytest.raises(ConfigError, match="http"):
        parse_urls("a:9000")
    with pytest.raises(ConfigError, match="no URL"):
        parse_urls(" , ")


def test_expand_gives_one_url_per_address_for_plain_http_names_only() -> None:
    assert expand("http://corenlp:9000/", ["10.0.0.1", "10.0.0.2", "10.0.0.1"]) == [
        "http://10.0.0.1:9000/",
        "http://10.0.0.2:9000/",
    ]
    assert expand("http://corenlp:9000/", ["fd00::1"]) == ["http://[fd00::1]:9000/"]
    assert expand("https://corenlp:9000/", ["10.0.0.1"]) == ["https://corenlp:9000/"]
    assert expand("http://127.0.0.1:9000/", ["127.0.0.1"]) == ["http://127.0.0.1:9000/"]
    assert expand("http://corenlp:9000/", []) == ["http://corenlp:9000/"]


def test_round_robin_when_idle() -> None:
    pool = EndpointPool([A, B, C])
    firsts = [pool.order()[0] for _ in range(6)]
    assert firsts == [A, B, C, A, B, C]


def test_fewest_in_flight_first() -> None:
    pool = EndpointPool([A, B])
    pool.begin(A)
    pool.begin(A)
    pool.begin(B)
    assert [pool.order()[0] for _ in range(4)] == [B, B, B, B]
    pool.end(A, ok=True)
    pool.end(A, ok=True)
    assert pool.order()[0] == A


def test_a_failed_endpoint_goes_last_until_its_cooldown_ends() -> None:
    clock = FakeClock()
    pool = EndpointPool([A, B, C], cooldown=5.0, clock=clock)
    pool.begin(B)
    pool.end(B, ok=False)
    assert pool.is_down(B)
    for _ in range(3):
        assert pool.order()[-1] == B  # still tried, but only after the healthy ones
    clock.now += 5.1
    assert not pool.is_down(B)
    assert B in [pool.order()[0] for _ in range(3)]


def test_replace_keeps_known_state_and_drops_gone_endpoints() -> None:
    clock = FakeClock()
    pool = EndpointPool([A, B], clock=clock)
    pool.begin(A)
    pool.end(A, ok=False)
    pool.replace([A, C])
    assert pool.urls == [A, C]
    assert pool.is_down(A) and not pool.is_down(C)
    pool.end(B, ok=False)  # a request to a replaced endpoint ends: ignored
    pool.replace([])  # a failed resolution never empties the pool
    assert pool.urls == [A, C]


# --- the client against loopback stand-ins -------------------------------------------


def _answer_for(text: str) -> dict[str, object]:
    """CoreNLP's JSON shape: the first word of the text tagged PERSON."""
    word = text.split()[0]
    return {
        "sentences": [
            {
                "tokens": [
                    {"characterOffsetBegin": 0, "characterOffsetEnd": len(word), "ner": "PERSON"}
                ]
            }
        ]
    }


class StandIn:
    """A loopback HTTP server answering like CoreNLP; counts requests; can fail."""

    def __init__(self) -> None:
        owner = self
        self.requests = 0
        self.status = 200
        self.delay = 0.0  # seconds per answer: equal service times make the split testable
        self.stopped = False
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with owner.lock:
                    owner.requests += 1
                time.sleep(owner.delay)
                payload = json.dumps(_answer_for(body)).encode()
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.send_response(200 if owner.status == 200 else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def two() -> Iterator[tuple[StandIn, StandIn]]:
    first, second = StandIn(), StandIn()
    yield first, second
    for server in (first, second):
        server.stop()


def test_requests_spread_over_both_servers(two: tuple[StandIn, StandIn]) -> None:
    first, second = two
    # Equal service times: least-in-flight then splits by load, not by scheduling noise
    # (with instant answers a busy machine skewed it to 27/13, which the rule allows).
    first.delay = second.delay = 0.05
    recogniser = CoreNLPRecogniser([first.url, second.url], max_request_chars=1)
    texts = [f"Name{i} spoke" for i in range(40)]  # one request per text
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: recogniser.spans([t]), texts))
    assert [r[0][0].end for r in results] == [len(t.split()[0]) for t in texts]
    assert first.requests + second.requests == 40
    assert first.requests >= 15 and second.requests >= 15


def test_sequential_requests_alternate(two: tuple[StandIn, StandIn]) -> None:
    first, second = two
    recogniser = CoreNLPRecogniser([first.url, second.url], max_request_chars=1)
    for i in range(10):
        recogniser.spans([f"Name{i} spoke"])
    assert (first.requests, second.requests) == (5, 5)  # ties go round-robin


def test_a_stopped_server_fails_over_to_the_other(two: tuple[StandIn, StandIn]) -> None:
    first, second = two
    recogniser = CoreNLPRecogniser(f"{first.url},{second.url}", timeout=5.0)
    first.stop()
    for i in range(10):
        assert recogniser.spans([f"Name{i} spoke"])[0][0].label == "PERSON"
    assert second.requests == 10
    assert recogniser.pool.is_down(first.url)


def test_a_5xx_server_fails_over_and_all_down_is_retryable(two: tuple[StandIn, StandIn]) -> None:
    first, second = two
    first.status = 503
    recogniser = CoreNLPRecogniser([first.url, second.url])
    assert recogniser.spans(["Kerry spoke"])[0][0].label == "PERSON"
    assert recogniser.spans(["Kerry spoke"])[0][0].label == "PERSON"
    assert first.requests == 1  # down after its failure: not asked again in its cool-down
    second.status = 500
    with pytest.raises(RecogniserUnavailableError) as info:
        recogniser.spans(["Kerry spoke"])
    assert first.url in str(info.value) and second.url in str(info.value)
    first.status = second.status = 200
    assert recogniser.spans(["Kerry spoke"])[0][0].label == "PERSON"  # both back


def test_names_are_resolved_again_into_one_endpoint_per_address(
    two: tuple[StandIn, StandIn],
) -> None:
    first, _ = two
    port_first = int(first.url.rsplit(":", 1)[1].strip("/"))
    answers = [["127.0.0.1"]]

    def resolver(host: str, port: int) -> list[str]:
        assert host == "corenlp.invalid" and port == port_first
        return answers[-1]

    recogniser = CoreNLPRecogniser(
        f"http://corenlp.invalid:{port_first}/", resolve_seconds=0.001, resolver=resolver
    )
    assert recogniser.pool.urls == [first.url]
    assert recogniser.spans(["Kerry spoke"])[0][0].label == "PERSON"
    answers.append(["127.0.0.2", "127.0.0.1"])  # a second pod became ready
    recogniser.spans(["Kerry spoke"])
    assert recogniser.pool.urls == [f"http://127.0.0.2:{port_first}/", first.url]


def test_a_failed_resolution_keeps_the_name() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    recogniser = CoreNLPRecogniser("http://corenlp:9000/", resolve_seconds=30, resolver=resolver)
    assert recogniser.pool.urls == ["http://corenlp:9000/"]

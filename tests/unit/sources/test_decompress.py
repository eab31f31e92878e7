"""Bounded decompression: bombs stop at the limit; gzip, deflate (both kinds), brotli."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from pipeline.errors import FetchError
from pipeline.sources.decompress import BoundedDecoder, ResponseTooLargeError


def test_bounded_decoder_stops_bombs() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    decoder = BoundedDecoder("gzip", 1024 * 1024, "u")
    with pytest.raises(ResponseTooLargeError, match="after decompression"):
        for i in range(0, len(bomb), 4096):
            decoder.feed(bomb[i : i + 4096])
    assert decoder.total <= 1024 * 1024 + 1
    ok = BoundedDecoder("deflate", 1000, "u")
    assert ok.feed(zlib.compress(b"hello")) + ok.finish() == b"hello"
    raw = zlib.compressobj(wbits=-15)
    raw_deflate = raw.compress(b"hello raw") + raw.flush()
    ok = BoundedDecoder("deflate", 1000, "u")
    assert ok.feed(raw_deflate) + ok.finish() == b"hello raw"
    with pytest.raises(FetchError, match="unsupported"):
        BoundedDecoder("compress", 10, "u")


def test_bounded_decoder_brotli() -> None:
    bomb = brotli.compress(b"a" * (64 * 1024 * 1024))
    decoder = BoundedDecoder("br", 100_000, "u")
    with pytest.raises(ResponseTooLargeError):
        decoder.feed(bomb)
    assert decoder.total <= 100_000 + 128 * 1024  # output is bounded per call
    ok = BoundedDecoder("br", 100, "u")
    assert ok.feed(brotli.compress(b"tiny")) == b"tiny"

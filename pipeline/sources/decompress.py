"""Bounded decompression of HTTP bodies: gzip, deflate (zlib or raw) and brotli.

A decompression bomb is stopped after the configured number of bytes, not after it
filled memory.
"""

from __future__ import annotations

import zlib
from typing import Any

import brotli  # type: ignore[import-untyped]

from pipeline.errors import FetchError

#: What the fetcher advertises in ``Accept-Encoding``: what :class:`BoundedDecoder` reads.
ACCEPT_ENCODING = "gzip, deflate, br"


class ResponseTooLargeError(FetchError):
    """The body (possibly after decompression) exceeds the configured maximum."""


class BoundedDecoder:
    """Incremental Content-Encoding decoder that never produces more than ``limit`` bytes.

    Output is bounded per call (``max_length`` / ``output_buffer_limit``), so a
    decompression bomb is stopped after ``limit`` bytes, not after it filled memory.
    """

    def __init__(self, encoding: str | None, limit: int, url: str) -> None:
        self.encoding = (encoding or "identity").strip().lower()
        self.limit = limit
        self.url = url
        self.total = 0
        self._zlib: Any = None
        self._brotli: Any = None
        if self.encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._zlib = None  # decided on the first bytes: zlib-wrapped or raw
        elif self.encoding == "br":
            self._brotli = brotli.Decompressor()
        elif self.encoding not in ("identity", ""):
            raise FetchError(url, f"unsupported Content-Encoding {self.encoding!r}")

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limit:
            raise ResponseTooLargeError(
                self.url,
                f"response exceeds {self.limit} bytes"
                + (" after decompression" if self.encoding not in ("identity", "") else ""),
            )
        return data

    def feed(self, data: bytes) -> bytes:
        if self.encoding in ("identity", ""):
            return self._count(data)
        try:
            if self._brotli is not None:
                return self._feed_brotli(data)
            if self._zlib is None:  # deflate: RFC says zlib, many servers send raw
                raw = not (
                    len(data) >= 2
                    and (data[0] & 0x0F) == 8
                    and ((data[0] << 8) | data[1]) % 31 == 0
                )
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
            return self._feed_zlib(data)
        except (zlib.error, ValueError) as exc:
            raise FetchError(self.url, f"corrupt {self.encoding} body: {exc}") from exc
        except brotli.error as exc:
            raise FetchError(self.url, f"corrupt br body: {exc}") from exc

    def _feed_zlib(self, data: bytes) -> bytes:
        out: list[bytes] = []
        buf = data
        while buf and not self._zlib.eof:
            chunk = self._zlib.decompress(buf, self.limit - self.total + 1)
            out.append(self._count(chunk))
            buf = self._zlib.unconsumed_tail
        return b"".join(out)

    def _feed_brotli(self, data: bytes) -> bytes:
        step = 64 * 1024  # output per call stays near this, whatever the ratio
        out = [self._count(self._brotli.process(data, output_buffer_limit=step))]
        while not self._brotli.can_accept_more_data():
            out.append(self._count(self._brotli.process(b"", output_buffer_limit=step)))
        return b"".join(out)

    def finish(self) -> bytes:
        if (
            self._zlib is not None
            and self.encoding != "deflate"
            and not self._zlib.eof
            and self.total == 0
        ):
            raise FetchError(self.url, f"truncated {self.encoding} body")
        if self._zlib is not None:
            return self._count(self._zlib.flush())
        return b""


__all__ = ["ACCEPT_ENCODING", "BoundedDecoder", "ResponseTooLargeError"]

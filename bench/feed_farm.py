"""A loopback feed farm for the poller scale benchmark: many feeds on many host addresses.

Feed ``i`` lives on host address ``127.0.{1 + h // 250}.{1 + h % 250}`` with
``h = i % hosts`` (Linux routes all of 127/8 to loopback: binding them needs no setup).
Each feed shows 20 items; a new one appears every ``churn`` seconds (at a per-feed
offset), so its ETag changes then and a conditional request in between gets a 304.

The farm counts, per feed, the times it was requested, and per host address the requests
in flight (and their peak): ``GET /stats?t0=..&interval=..`` on the control address
answers the coverage of each interval and the peak in flight per host.

    python bench/feed_farm.py --feeds 200000 --hosts 200 --port 24870 --control 24871
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from typing import Any

from aiohttp import web


def host_address(h: int) -> str:
    return f"127.0.{1 + h // 250}.{1 + h % 250}"


def feed_url(i: int, hosts: int, port: int) -> str:
    return f"http://{host_address(i % hosts)}:{port}/f/{i}"


class Farm:
    def __init__(self, feeds: int, hosts: int, churn: float) -> None:
        self.feeds = feeds
        self.hosts = hosts
        self.churn = churn
        self.t0 = time.time()
        self.requests: list[list[float]] = [[] for _ in range(feeds)]
        self.in_flight: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.status: dict[int, int] = defaultdict(int)

    def current(self, i: int, now: float) -> int:
        offset = (i * 7919) % int(self.churn)
        return int((now - self.t0 + offset) // self.churn) + 20

    def body(self, i: int, k: int) -> bytes:
        items = "".join(
            f"<item><title>Feed {i} story {n}</title>"
            f"<link>http://site{i % 997}.example/{i}/{n}</link>"
            f"<guid>f{i}-{n}</guid><description>Story {n} of feed {i}, "
            f"a few words of summary text.</description></item>"
            for n in range(k, k - 20, -1)
        )
        return (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {i}</title><link>http://site{i % 997}.example/</link>"
            f"{items}</channel></rss>"
        ).encode()

    async def feed(self, request: web.Request) -> web.StreamResponse:
        host = request.transport.get_extra_info("sockname")[0] if request.transport else "?"
        self.in_flight[host] += 1
        self.peak[host] = max(self.peak[host], self.in_flight[host])
        try:
            i = int(request.match_info["i"])
            now = time.time()
            if not 0 <= i < self.feeds:
                self.status[404] += 1
                return web.Response(status=404)
            self.requests[i].append(now)
            k = self.current(i, now)
            etag = f'"{i}-{k}"'
            if request.headers.get("If-None-Match") == etag:
                self.status[304] += 1
                return web.Response(status=304, headers={"ETag": etag})
            self.status[200] += 1
            return web.Response(
                body=self.body(i, k), content_type="application/rss+xml", headers={"ETag": etag}
            )
        finally:
            self.in_flight[host] -= 1

    async def stats(self, request: web.Request) -> web.Response:
        t0 = float(request.query.get("t0", self.t0))
        interval = float(request.query.get("interval", 300))
        windows = int(request.query.get("windows", 2))
        covered = [0] * windows
        for times in self.requests:
            hit = [False] * windows
            for t in times:
                w = int((t - t0) // interval)
                if 0 <= w < windows:
                    hit[w] = True
            for w in range(windows):
                covered[w] += hit[w]
        since = float(request.query.get("since", 0))
        data: dict[str, Any] = {
            "feeds": self.feeds,
            "covered": covered,
            "requests": sum(len(r) for r in self.requests),
            "requests_since": sum(1 for r in self.requests for t in r if t >= since),
            "first_since": min((t for r in self.requests for t in r if t >= since), default=None),
            "status": dict(self.status),
            "peak_in_flight_per_host": max(self.peak.values(), default=0),
            "hosts_seen": len(self.peak),
        }
        return web.json_response(data)


async def serve(args: argparse.Namespace) -> None:
    farm = Farm(args.feeds, args.hosts, args.churn)
    app = web.Application()
    app.router.add_get("/f/{i}", farm.feed)
    control = web.Application()
    control.router.add_get("/stats", farm.stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for h in range(args.hosts):
        await web.TCPSite(runner, host_address(h), args.port, backlog=512).start()
    control_runner = web.AppRunner(control, access_log=None)
    await control_runner.setup()
    await web.TCPSite(control_runner, "127.0.0.1", args.control).start()
    sys.stdout.write(json.dumps({"ready": True, "t0": farm.t0}) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200_000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--churn", type=float, default=600.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

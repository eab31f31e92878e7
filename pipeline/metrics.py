"""Prometheus metrics and the small HTTP server that exposes them with a health check.

``GET /metrics`` is the Prometheus text format; ``GET /health`` is JSON and answers 200
while the registered health callback says the process is healthy, else 503.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

FEED_FETCHES = Counter(
    "newswire_feed_fetches_total",
    "Feed fetches by outcome (new, unchanged, not_modified, error, refused, ...).",
    ["outcome"],
)
FEED_NOT_MODIFIED = Counter(
    "newswire_feed_not_modified_total", "Feed fetches answered 304 Not Modified."
)
FEED_BYTES = Counter("newswire_feed_bytes_total", "Feed body bytes received (after decompression).")
FEED_PARSE_ERRORS = Counter(
    "newswire_feed_parse_errors_total", "Feed documents that could not be parsed.", ["reason"]
)
FEED_FAILURES = Counter(
    "newswire_feed_failures_total", "Failed feed polls by reason class.", ["reason"]
)
FEED_NEW_ITEMS = Counter(
    "newswire_feed_new_items_total", "Articles published for the first time by the poller."
)
FULLTEXT_FETCHES = Counter(
    "newswire_fulltext_fetches_total",
    "Article pages fetched for full text (fulltext feeds), by outcome (ok, no_text, reason).",
    ["outcome"],
)
POLLER_KAFKA_ERRORS = Counter(
    "newswire_poller_kafka_errors_total",
    "Polls whose articles or state could not be written to Kafka (retried; not a feed failure).",
)
PARSE_POOL_RESTARTS = Counter(
    "newswire_parse_pool_restarts_total",
    "Times the poller's parse pool was rebuilt (a process died or a job ran over its timeout).",
)
FEEDS_IN_BACKOFF = Gauge(
    "newswire_feeds_in_backoff", "Assigned feeds whose last poll failed (backing off)."
)
FEEDS_ASSIGNED = Gauge("newswire_feeds_assigned", "Feeds this poller is responsible for.")
POLL_LAST_CYCLE = Gauge(
    "newswire_poller_last_activity_timestamp_seconds", "Unix time of the poller's last poll."
)
POLLER_STATE_WRITES_SKIPPED = Counter(
    "newswire_poller_state_writes_skipped_total",
    "Polls whose state was not written because only the schedule changed.",
)
FEED_REVISIONS = Counter(
    "newswire_feed_revisions_total",
    "Items published again because their title, summary or body changed.",
)
SCHEDULE_LAG = Histogram(
    "newswire_poller_schedule_lag_seconds",
    "Request start minus due time of each poll (how far the poller runs behind).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
)
FEEDS_DISABLED = Gauge(
    "newswire_feeds_disabled", "Assigned feeds the poller gave up on (probed slowly)."
)
FETCH_SECONDS = Histogram(
    "newswire_feed_fetch_seconds",
    "Feed fetch duration (request to last byte).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def make_app(health: HealthCheck, registry: CollectorRegistry = REGISTRY) -> web.Application:
    """An aiohttp application serving ``/metrics`` and ``/health``."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok, details = health()
        return web.Response(
            status=200 if ok else 503,
            text=json.dumps({"status": "ok" if ok else "unhealthy", **details}, default=str),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", healthz)
    app.router.add_get("/healthz", healthz)
    return app


async def start_http_server(health: HealthCheck, host: str, port: int) -> web.AppRunner:
    """Start the metrics/health server; returns the runner (``await runner.cleanup()``)."""
    runner = web.AppRunner(make_app(health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


__all__ = [
    "FEEDS_ASSIGNED",
    "FEEDS_IN_BACKOFF",
    "FEED_BYTES",
    "FEED_FAILURES",
    "FEED_FETCHES",
    "FEED_NEW_ITEMS",
    "FEED_NOT_MODIFIED",
    "FEED_PARSE_ERRORS",
    "FETCH_SECONDS",
    "POLL_LAST_CYCLE",
    "make_app",
    "start_http_server",
]


# -- worker (enrichment and sink agents) -------------------------------------------------

WORKER_RECORDS = Counter(
    "newswire_worker_records_total",
    "Records handled by the worker, by stage (enrich, sink) and outcome "
    "(enriched, indexed, stale, dlq).",
    ["stage", "outcome"],
)
WORKER_UNKNOWN_FIELDS = Counter(
    "newswire_worker_unknown_fields_total",
    "Records read with fields this version does not know (ignored; see the upgrade rule).",
    ["stage"],
)
WORKER_BAD_INPUT = Counter(
    "newswire_worker_bad_input_total",
    "Bad input met by the worker (invalid record, oversize body, rejected by the index).",
    ["reason"],
)
INDEX_RETRIES = Counter(
    "newswire_index_retries_total", "Bulk requests retried after retryable failures."
)
INDEX_STALLED = Gauge(
    "newswire_index_stalled",
    "1 while a bulk write has failed more than NEWSWIRE_MAX_RETRIES times in a row.",
)
STORY_TABLE_SECONDS = Histogram(
    "newswire_story_table_seconds",
    "Time of one batch's story-table round trip (lookups, clustering, write) in the engine.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STORY_TABLE_RETRIES = Counter(
    "newswire_story_table_retries_total",
    "Story-table round trips retried while the search engine was unreachable.",
)
STORY_TABLE_EXPIRED = Counter(
    "newswire_story_table_expired_indices_total",
    "Story-table day indices deleted once older than NEWSWIRE_STORY_WINDOW_DAYS.",
)
STORY_TWINS_ADOPTED = Counter(
    "newswire_story_twins_adopted_total",
    "Clusters founded at the same moment as a twin by another worker, moved to the earliest.",
)
ENRICH_SECONDS = Histogram(
    "newswire_enrich_batch_seconds",
    "Time to enrich one micro-batch (NLP in the executor).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WORKER_ACKS_REFUSED = Counter(
    "newswire_worker_acks_refused_total",
    "Acknowledgements Faust made on its own for messages no agent handled (skipped at a "
    "rebalance or a stop), refused so that no commit passes them (pipeline/worker/acks.py).",
)
WORKER_KAFKA_RETRIES = Counter(
    "newswire_worker_kafka_retries_total",
    "Worker output (enriched records, story keys, dead letters) sent again because Kafka "
    "was unavailable (a broker restart), by stage.",
    ["stage"],
)
ENRICH_RETRIES = Counter(
    "newswire_enrich_retries_total",
    "Enrichment batches retried because the entity recogniser (CoreNLP) was unavailable.",
)
PARTITIONS_STOPPED = Gauge(
    "newswire_partitions_stopped",
    "1 for a partition the worker stopped because its committed offset fell out of the "
    "topic's retention (records lost before it was read; see the README's recovery).",
    ["topic", "partition"],
)
ALERTS_STANDING = Gauge(
    "newswire_alerts_standing_queries", "Standing queries this worker matches articles against."
)
ALERTS_MATCHES = Counter(
    "newswire_alerts_matches_total", "Standing-query matches written to the alerts topic."
)

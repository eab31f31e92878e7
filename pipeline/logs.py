"""Structured logging for every command: console lines for people, JSON lines for machines."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import structlog

#: Seconds during which a repeated Kafka client message is logged once.
REPEAT_WINDOW = 10.0


class RepeatFilter(logging.Filter):
    """Logs a message of the Kafka client (aiokafka) once per ``window`` seconds.

    While a broker is away, aiokafka logs every failed connect, fetch and metadata request,
    up to thousands of lines a second; they say one thing. The first line of a kind is
    kept, the repeats within ``window`` are counted, and the next one logged after it
    says how many were left out. A kind is the logger and the message's format string."""

    def __init__(
        self, window: float = REPEAT_WINDOW, prefixes: tuple[str, ...] = ("aiokafka",),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        super().__init__()
        self.window = window
        self.prefixes = prefixes
        self.clock = clock
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self.last.get(key)
        if last is not None and now - last < self.window:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        self.last[key] = now
        left_out = self.suppressed.pop(key, 0)
        if left_out:
            record.msg = f"{record.msg} ({left_out} like it in the last {self.window:.0f} s)"
        if len(self.last) > 1000:  # kinds are few; stay bounded whatever happens
            self.last = {k: t for k, t in self.last.items() if now - t < self.window}
        return True


def configure(level: str = "INFO", fmt: str = "console") -> None:
    """Route structlog and the standard library (Faust, aiokafka) through one renderer."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    json_lines = fmt == "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    # JSON lines carry a traceback as a structured "exception" field, not a bare repr; no
    # frame locals (article text, credentials' holders) in logs.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    final = [tracebacks] if json_lines else []
    structlog.configure(
        # Below the level an event is dropped first, before the time stamp and the rest
        # (the poller's per-poll debug line costs nothing at INFO).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *final,
                renderer,
            ],
        )
    )
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # The search clients log every failed request with a traceback before raising; the
    # error is raised (and reported once) by the caller, so keep theirs quiet.
    for client in ("elastic_transport", "elasticsearch", "opensearch"):
        logging.getLogger(client).setLevel(max(logging.ERROR, root.level))

"""Fail-stop: a worker that hits an unexpected error in a batch exits at once."""

from __future__ import annotations

import logging
import os
from typing import NoReturn

import structlog

log = structlog.get_logger(__name__)

#: Exit status of a worker that stopped itself on an unexpected error (EX_SOFTWARE).
FAIL_STOP_EXIT = 70


def fail_stop(stage: str, exc: BaseException, records: int) -> NoReturn:
    """Stop the process at once on an unexpected error in a batch.

    Faust would restart the agent and go on acknowledging later events, and its commit
    logic can then move the committed offset past the failed batch: records lost. Exiting
    without acknowledging anything more is what a SIGKILL does, which the delivery
    guarantees already cover: the batch is redelivered when the worker is restarted (by
    docker compose, Kubernetes, or `newswire run`'s report).
    """
    log.critical(
        "worker.fail_stop",
        stage=stage,
        records=records,
        error=f"{type(exc).__name__}: {exc}",
        exc_info=exc,
        exit_code=FAIL_STOP_EXIT,
    )
    logging.shutdown()
    os._exit(FAIL_STOP_EXIT)


__all__ = ["FAIL_STOP_EXIT", "fail_stop"]

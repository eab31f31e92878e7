"""JSON log lines: a logged exception keeps its traceback, without frame locals."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from pipeline.logs import configure


def test_json_lines_carry_the_traceback_without_locals(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", "json")
    secret_text = "body of an article"
    try:
        try:
            _ = secret_text[len(secret_text) + 1]
        except IndexError as exc:
            structlog.get_logger("test").critical("worker.fail_stop", exc_info=exc)
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    record = json.loads(line)
    (exception,) = record["exception"]
    assert exception["exc_type"] == "IndexError"
    assert exception["frames"][-1]["name"] == "test_json_lines_carry_the_traceback_without_locals"
    assert "locals" not in exception["frames"][-1]
    assert secret_text not in line

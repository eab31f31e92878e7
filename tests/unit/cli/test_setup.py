"""`newswire setup`'s cluster options and the refusal of placeholder secrets (no servers)."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from pipeline.cli import app


def test_setup_offers_partitions_and_force() -> None:
    result = CliRunner().invoke(app, ["setup", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--partitions", "--poller-partitions", "--force"):
        assert option in result.output


def test_a_placeholder_password_stops_every_command_with_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE_")} | {
        "NEWSWIRE_ELASTICSEARCH_PASSWORD": "REPLACE-ME-writer-password",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "setup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "NEWSWIRE_ELASTICSEARCH_PASSWORD is a placeholder" in result.stderr
    assert "Traceback" not in result.stderr

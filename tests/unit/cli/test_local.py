"""``newswire stack`` / ``run`` where the workshop is not installed (the Docker image)."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cli.local import NOT_INSTALLED
from pipeline.errors import ConfigError


@pytest.mark.parametrize("command", [["stack", "status"], ["stack", "up"], ["run"]])
def test_without_the_workshop_the_local_commands_say_so(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "workshop" or m.startswith("workshop.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "workshop", None)  # import workshop -> ModuleNotFoundError
    result = CliRunner().invoke(app, command)
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == NOT_INSTALLED
    assert "development tool" in NOT_INSTALLED and "NEWSWIRE_KAFKA_BOOTSTRAP" in NOT_INSTALLED

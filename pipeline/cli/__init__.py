"""The ``newswire`` command line: thin commands per group over the stages.

:mod:`~pipeline.cli.app` holds the app and the helpers, one module per command group
registers its commands on it (importing them here wires the app), and
:mod:`~pipeline.cli.render` draws the tables. Only :mod:`~pipeline.cli.local` (``stack``,
``run``) reaches into the workshop.
"""

from __future__ import annotations

import sys

from rich.text import Text
from typer.models import CommandInfo

from pipeline.cli import alerts, archive, dlq, feeds, local, search, stages
from pipeline.cli.app import app, err
from pipeline.errors import NewswireError

#: The modules that register commands on the app (imported for that).
COMMAND_MODULES = (stages, feeds, dlq, search, archive, alerts, local)
#: ``newswire --help`` lists the commands in the order of the data flow, not of the imports.
ORDER = (
    "setup", "worker", "replay", "enrich", "poll", "search", "story", "trends", "export",
    "reprocess", "run",
)  # fmt: skip


def _position(info: CommandInfo) -> int:
    name = info.name or getattr(info.callback, "__name__", "")
    return ORDER.index(name) if name in ORDER else len(ORDER)


app.registered_commands.sort(key=_position)


def main() -> None:
    """Entry point: clear one-line errors for the errors we raise on purpose."""
    try:
        app()
    except NewswireError as exc:
        err.print(Text.assemble(("error:", "red"), f" {exc}"))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]

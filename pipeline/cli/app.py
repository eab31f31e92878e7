"""The Typer app, its command groups, the consoles and the helpers every command uses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from pipeline.endpoints import resolve
from pipeline.errors import ConfigError
from pipeline.logs import configure
from pipeline.settings import Settings, get_settings

app = typer.Typer(
    help="Newswire: streaming news ingestion (feeds -> Kafka -> enrichment -> search).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help="The local Kafka and search engine, without Docker.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
dlq_app = typer.Typer(
    help="The dead-letter topic: what failed, why, and replaying it.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
feeds_app = typer.Typer(
    help="The feed list (YAML or OPML) and its polling state.", no_args_is_help=True
)
app.add_typer(feeds_app, name="feeds")
out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]

FeedsOption = Annotated[
    Path | None, typer.Option("--feeds", help="Feed list, YAML or OPML (NEWSWIRE_FEEDS_FILE).")
]


def load_settings(*, local_endpoints: bool = True) -> Settings:
    """The settings a command runs with, logging configured. Unless told otherwise, the
    local stack's endpoints fill the unset Kafka and search settings (pipeline.endpoints):
    this is the one place they are looked up; runtime code only reads its settings."""
    try:
        current = get_settings()
    except ValidationError as exc:  # a bad or placeholder value: one clear line, no traceback
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"invalid settings: {reasons}") from None
    configure(current.log_level, current.log_format)
    return resolve(current) if local_endpoints else current


def literal(*values: object) -> list[Text]:
    """Table cells shown as they are: feed text such as ``[/b]`` or ``[link=...]`` is never
    read as rich markup (which would style it, or raise ``MarkupError``)."""
    return [Text(str(value)) for value in values]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")

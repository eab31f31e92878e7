"""Text from feeds never reaches the terminal as rich markup: every table prints it literally."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cli.render import (
    dlq_table,
    emphasis,
    feeds_list_table,
    feeds_status_table,
    search_tables,
)
from pipeline.search.query import SearchResult
from pipeline.sources.feeds import FeedConfig
from pipeline.sources.status import FeedStatus
from pipeline.worker.dlq import DeadLetter

#: Markup that would raise MarkupError ([/b] closes nothing), link, or restyle the text.
HOSTILE = ["[/b]", "[link=https://evil.test/]click[/link]", "[bold red]alarm", "a [b]c[/b] \\"]


def render(*tables: Table) -> str:
    console = Console(record=True, width=400, color_system="truecolor", force_terminal=True)
    for table in tables:
        console.print(table)
    return console.export_text()


def assert_literal(text: str, *values: str) -> None:
    for value in values:
        assert value in text, f"{value!r} not printed literally"


def test_search_tables_print_every_column_literally() -> None:
    hit = {
        "id": "1",
        "published_at": "2024-01-02T00:00:00Z",
        "title": "Title [/b] with [link=https://evil.test/]click[/link]",
        "source": {"name": "Source [bold red]alarm"},
        "language": "[/i]",
        "topics": [{"code": "1", "label": "Topic [/u]", "score": 1.0}],
        "entities": {"person": ["Ann [b]c[/b] \\"]},
        "highlight": {"body": ["a **match** and [/b] and [link=x]y[/link]"]},
    }
    result = SearchResult(
        total=1, hits=[hit], facets={"source": [{"value": "Facet [/b] [red]", "count": 3}]}
    )
    text = render(*search_tables(result))
    assert_literal(
        text,
        "Title [/b] with [link=https://evil.test/]click[/link]",
        "Source [bold red]alarm",
        "[/i]",
        "Topic [/u]",
        "Ann [b]c[/b] \\",
        "a match and [/b] and [link=x]y[/link]",
        "Facet [/b] [red]",
    )


def test_highlight_marks_are_bold_and_nothing_else_is_styled() -> None:
    text = emphasis("before **hit** [bold]after[/bold] **two**")
    assert text.plain == "before hit [bold]after[/bold] two"
    bold = [text.plain[span.start : span.end] for span in text.spans if span.style == "bold"]
    assert bold == ["hit", "two"]


def test_feeds_status_table_prints_names_outcomes_and_errors_literally() -> None:
    row = FeedStatus(
        name="Feed [/b]",
        url="https://a.test/feed",
        last_poll=datetime(2024, 1, 1, tzinfo=UTC),
        http_status=500,
        outcome="[red]error",
        new_items=0,
        total_items=0,
        consecutive_failures=2,
        next_poll=None,
        last_error="parse: <title>[link=https://evil.test/]x[/link]",
    )
    text = render(feeds_status_table([row]))
    assert_literal(
        text, "Feed [/b]", "[red]error", "parse: <title>[link=https://evil.test/]x[/link]"
    )


def test_feeds_list_table_prints_names_and_tags_literally() -> None:
    feed = FeedConfig(
        url="https://a.test/feed?q=[x]", name="Name [/b]", tags=("[link=https://e.test/]t",)
    )
    text = render(feeds_list_table(Path("feeds [/b].yaml"), [feed]))
    assert_literal(text, "Name [/b]", "[link=https://e.test/]t", "feeds [/b].yaml")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_dlq_table_prints_keys_and_reasons_literally(hostile: str) -> None:
    letter = DeadLetter(
        offset=3,
        partition=1,
        stage="sink",
        key=f"key {hostile}",
        reason=f"rejected by the index: {hostile}",
        failed_at="2024-01-01T00:00:00+00:00",
        original=None,
        source_topic=None,
    )
    text = render(dlq_table([letter]))
    assert_literal(text, f"key {hostile}", f"rejected by the index: {hostile}", "1:3")


def test_feeds_list_command_prints_a_hostile_feed_name(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(
        "feeds:\n"
        "  - url: https://a.test/rss\n"
        "    name: 'Evil [/b] [link=https://evil.test/]x[/link]'\n"
        "  - url: 'ftp://[/b]'\n"
    )
    result = CliRunner().invoke(
        app, ["feeds", "list", "--feeds", str(feeds)], env={"COLUMNS": "300"}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Evil [/b] [link=https://evil.test/]x[/link]" in result.output
    assert "ftp://[/b]" in result.output  # the invalid entry's reason, literally

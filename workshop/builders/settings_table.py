"""The README's configuration table, built from the settings' fields (``make docs``)."""

from __future__ import annotations

from pathlib import Path

from pipeline.settings import Settings


def markdown_table() -> str:
    """The README's configuration table, generated from the fields (``make docs``)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        _, _, text = (field.description or "").partition(":")
        default = field.default
        if isinstance(default, Path):
            default = default.as_posix()
        shown = "unset" if default is None else f"`{default}`"
        secret = " Secret: never printed." if "Secret" in str(field.annotation) else ""
        rows.append(f"| `NEWSWIRE_{name.upper()}` | {shown} | {text.strip() or '-'}{secret} |")
    return "\n".join(rows) + "\n"

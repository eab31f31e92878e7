"""Rewrite the README's configuration table from pipeline.settings (``make docs``)."""

import re
from pathlib import Path

from workshop.builders.settings_table import markdown_table

readme = Path(__file__).resolve().parents[2] / "README.md"
text = readme.read_text(encoding="utf-8")
pattern = re.compile(r"\| variable \| default \| meaning \|\n(?:\|.*\|\n)+")
readme.write_text(pattern.sub(lambda _: markdown_table(), text, count=1), encoding="utf-8")

"""The README's folder table names every module of the package, so it matches the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_folder_table_names_every_module() -> None:
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(
            r"^\| `(pipeline/[\w/]*)` \| (.*) \|$", (ROOT / "README.md").read_text(), re.M
        )
    }
    missing = []
    for module in sorted((ROOT / "pipeline").rglob("*.py")):
        if module.name in {"__init__.py", "__main__.py"}:
            continue
        folder = module.parent.relative_to(ROOT).as_posix() + "/"
        if f"`{module.name}`" not in rows.get(folder, ""):
            missing.append(f"{folder}{module.name}")
    assert not missing, f"README folder table lacks {missing}"

"""The import-cycle check of ``make lint`` (workshop.checks.cycles)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workshop.checks.cycles import check, import_graph, main, one_cycle, strongly_connected


def test_components_and_one_cycle_each() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "e": {"e"},  # imports itself
        "f": {"d"},
    }
    assert strongly_connected(graph) == [["a", "b", "c"], ["e"]]
    assert one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert check(graph) == ["a -> b -> c -> a", "e -> e"]


def test_an_acyclic_graph_passes() -> None:
    assert check({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_a_deep_chain_does_not_overflow() -> None:
    depth = 5000
    graph = {f"m{i}": {f"m{i + 1}"} for i in range(depth)}
    graph[f"m{depth}"] = {"m0"}
    assert len(strongly_connected(graph)[0]) == depth + 1


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("cyclepkg")]:
        del sys.modules[name]


def test_lazy_and_package_init_cycles_on_a_real_package(
    on_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A function-level import closes a cycle, and so does a package ``__init__`` that a
    module of its own imports back (which import-linter's sibling contract does not see)."""
    _write(
        on_path,
        {
            "cyclepkg/__init__.py": "",
            "cyclepkg/client.py": "from cyclepkg.security import options\n",
            "cyclepkg/security.py": (
                "def options():\n    from cyclepkg.client import bootstrap\n    return bootstrap\n"
            ),
            "cyclepkg/cli/__init__.py": "from cyclepkg.cli import local\n",
            "cyclepkg/cli/local.py": "import cyclepkg.cli\n",
            "cyclepkg/fine.py": "import cyclepkg.client\n",
        },
    )
    graph = import_graph(["cyclepkg"])
    assert graph["cyclepkg.security"] == {"cyclepkg.client"}  # the lazy import counts
    assert check(graph) == [
        "cyclepkg.cli -> cyclepkg.cli.local -> cyclepkg.cli",
        "cyclepkg.client -> cyclepkg.security -> cyclepkg.client",
    ]
    assert main(["cyclepkg"]) == 1
    err = capsys.readouterr().err
    assert "import cycle: cyclepkg.client -> cyclepkg.security -> cyclepkg.client" in err


def test_the_command_passes_a_package_without_cycles(
    on_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(on_path, {"cyclepkg/__init__.py": "", "cyclepkg/a.py": "import cyclepkg.b\n"})
    _write(on_path, {"cyclepkg/b.py": "import json\n"})
    assert main(["cyclepkg"]) == 0
    assert "no import cycle among 3 modules" in capsys.readouterr().out

"""No test module imports another test module or anything under ``tests.``: shared helpers
are pytest plugins (tests/plugins/, registered in tests/conftest.py) that tests take as
fixtures. Imports under ``if TYPE_CHECKING:`` from the plugins are allowed (types only, no
runtime coupling)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def test_imports(source: str) -> list[str]:
    """Modules under ``tests`` that ``source`` imports at run time (relative imports count)."""
    tree = ast.parse(source)
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if _type_checking_block(node):
            for inner in ast.walk(node):
                module = getattr(inner, "module", None) or ""
                if isinstance(inner, ast.ImportFrom) and module.startswith("tests.plugins"):
                    typing_only.add(id(inner))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in {"tests", "conftest"}]
        elif isinstance(node, ast.ImportFrom) and id(node) not in typing_only:
            module = node.module or ""
            if node.level or module.split(".")[0] in {"tests", "conftest"}:
                found.append("." * node.level + module)
    return found


test_imports.__test__ = False  # type: ignore[attr-defined]  # the checker, not a test


def test_checker_sees_every_form() -> None:
    assert test_imports("from tests.integration.helpers import isolated") == [
        "tests.integration.helpers"
    ]
    assert test_imports("import tests.conftest") == ["tests.conftest"]
    assert test_imports("from .helpers import x") == [".helpers"]
    assert test_imports("def f():\n    from tests.conftest import _BASE\n") == ["tests.conftest"]
    guarded = "if TYPE_CHECKING:\n    from tests.plugins.pki import Pki\n"
    assert test_imports(guarded) == []
    assert test_imports("if TYPE_CHECKING:\n    from tests.unit.test_x import y\n") == [
        "tests.unit.test_x"
    ]
    assert test_imports("from pipeline.settings import Settings") == []


def test_no_test_module_imports_another() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        name = path.relative_to(ROOT).as_posix()
        imported = test_imports(path.read_text(encoding="utf-8"))
        if imported:
            offenders[name] = imported
    assert not offenders, f"test modules importing test code (use a plugin fixture): {offenders}"


def test_test_folders_mirror_the_packages() -> None:
    """tests/unit/<pkg>/ and tests/integration/<pkg>/ name a package of pipeline/ (or the
    workshop), so a module's tests are found where the module is."""
    strays = []
    for kind in ("unit", "integration"):
        for folder in sorted(p for p in (TESTS / kind).iterdir() if p.is_dir()):
            if folder.name in ("__pycache__", "faults"):
                continue
            if folder.name != "workshop" and not (ROOT / "pipeline" / folder.name).is_dir():
                strays.append(folder.relative_to(ROOT).as_posix())
    assert not strays, f"test folders with no package of that name: {strays}"

"""One version source: ``pipeline.__version__``. The installed metadata (pyproject's dynamic
version), the version records carry and the changelog's latest release all agree with it."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pipeline

ROOT = Path(__file__).resolve().parents[2]
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+[^\]]*)\] - (\d{4}-\d{2}-\d{2})$", re.M)


def test_pyproject_reads_the_package_version() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in config["project"]["dynamic"]
    assert "version" not in config["project"], "pyproject must not repeat the version"
    dynamic = config["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "pipeline.__version__"}


def test_installed_metadata_matches() -> None:
    assert version("newswire") == pipeline.__version__


def test_records_carry_the_package_version() -> None:
    assert pipeline.__version__ == pipeline.PIPELINE_VERSION


def test_changelog_latest_release_matches() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[0] == "Unreleased", "Keep a Changelog: Unreleased comes first"
    releases = RELEASE.findall(text)
    assert releases, "no released version in CHANGELOG.md"
    assert releases[0][0] == pipeline.__version__


def test_changelog_sections_are_keep_a_changelog() -> None:
    """Only the standard change types, and no figures: one line per change, numbers belong
    in docs/benchmarks.md."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    kinds = set(re.findall(r"^### (.+)$", text, re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds
    entries = [line for line in text.splitlines() if line.startswith("- ")]
    assert entries
    figure = re.compile(r"\b0\.\d{3,}\b|\d ?(ms|us|KiB|MiB|GiB|words/s|articles/s)\b|\d ?%")
    measured = [entry for entry in entries if figure.search(entry)]
    assert not measured, f"figures belong in docs/benchmarks.md: {measured}"

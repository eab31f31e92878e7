"""The index template kept in ``deploy/elasticsearch/``, shared by both search backends."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import ConfigError, SearchBackendError

if TYPE_CHECKING:
    from pipeline.sinks.backend import SearchBackend

AnalysisVariant = Literal["english", "standard"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def templates_dir() -> Path:
    """``NEWSWIRE_TEMPLATES_DIR``, else ``deploy/elasticsearch`` of this checkout."""
    configured = os.environ.get("NEWSWIRE_TEMPLATES_DIR")
    path = Path(configured) if configured else REPO_ROOT / "deploy" / "elasticsearch"
    if not (path / "index-template.json").is_file():
        raise ConfigError(f"index templates not found in {path}; set NEWSWIRE_TEMPLATES_DIR")
    return path


def _load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read template {path}: {exc}") from exc
    return data


@dataclass(frozen=True)
class IndexTemplates:
    """Component templates (by name, in install order) and the composed index template."""

    components: dict[str, dict[str, Any]]
    index_template: dict[str, Any]
    variant: AnalysisVariant

    @property
    def mappings(self) -> dict[str, Any]:
        """The article mapping (for checks and tests)."""
        mappings: dict[str, Any] = self.components["newswire-mappings"]["template"]["mappings"]
        return mappings


def load_templates(variant: AnalysisVariant, directory: Path | None = None) -> IndexTemplates:
    """Read the templates, picking the analysis component for ``variant``."""
    root = directory or templates_dir()
    components = {
        "newswire-settings": _load(root / "component-settings.json"),
        "newswire-analysis": _load(root / f"component-analysis-{variant}.json"),
        "newswire-mappings": _load(root / "component-mappings.json"),
    }
    index_template = _load(root / "index-template.json")
    missing = set(index_template.get("composed_of", [])) - set(components)
    if missing:
        raise ConfigError(f"index template is composed of unknown components: {sorted(missing)}")
    return IndexTemplates(components, index_template, variant)


def first_index(alias: str) -> str:
    """The first versioned index behind an alias (``newswire-articles-000001``)."""
    return f"{alias}-000001"


def index_body(file_name: str) -> dict[str, Any]:
    """A whole index's body (settings and mappings) kept beside the templates, without
    its ``_meta`` note (the stories and trends indices)."""
    body = _load(templates_dir() / file_name)
    body.pop("_meta", None)
    return body


async def create_missing_index(backend: SearchBackend, name: str, file_name: str) -> bool:
    """Create ``name`` from ``file_name`` when it does not exist; True when created."""
    try:
        await backend.create_index(name, index_body(file_name))
    except SearchBackendError as exc:
        if "resource_already_exists" in str(exc):
            return False
        raise
    return True

"""The enrichment version: a fingerprint of what produced an article's enrichment.

Every enriched article carries it (``enrichment_version``), so ``newswire reprocess
--stale`` can select what an older recogniser, model, rule set or data file produced. It
hashes the recogniser's name and model, :data:`RULES_VERSION` (bump it with any change to
the enrichment code that changes its output) and the content of every file in
``pipeline/data`` (aliases, topic terms, stop words, ...): editing a data file is a new
version by itself.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

#: Bump when the enrichment code changes what it produces for the same input.
RULES_VERSION = 1
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@lru_cache(maxsize=4)
def data_fingerprint(directory: Path = DATA_DIR) -> str:
    """SHA-256 over the names and contents of the data files (read once per process)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def recogniser_identity(recogniser: Any) -> tuple[str, str]:
    """(name, model) of a recogniser; the model is whatever it reports (``model``
    attribute), else ``default`` (the backend's configured model)."""
    name = str(getattr(recogniser, "name", "unknown"))
    model = getattr(recogniser, "model", None) or getattr(recogniser, "model_name", None)
    return name, str(model or "default")


def enrichment_version(
    recogniser: str, model: str, *, rules: int = RULES_VERSION, data: str | None = None
) -> str:
    """``ev-`` and 16 hex digits: the fingerprint of recogniser, model, rules and data."""
    parts = [recogniser, model, str(rules), data if data is not None else data_fingerprint()]
    return "ev-" + hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


__all__ = ["RULES_VERSION", "data_fingerprint", "enrichment_version", "recogniser_identity"]

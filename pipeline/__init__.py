"""Newswire: streaming news ingestion (feeds -> Kafka -> enrichment -> search index)."""

# The one version source: pyproject.toml reads it (dynamic version), CHANGELOG.md's top
# released version must match it (tests/unit/test_version.py), records carry it.
__version__ = "0.1.0"
PIPELINE_VERSION = __version__

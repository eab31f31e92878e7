"""Newswire: streaming news ingestion (feeds -> Kafka -> enrichment -> search index)."""

__version__ = "0.1.0"
PIPELINE_VERSION = __version__

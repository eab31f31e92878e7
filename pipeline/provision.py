"""Provisioning (``newswire setup``): Kafka topics, the index template and alias, Kibana
saved objects. Idempotent; not packaging (that is pyproject.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from pipeline.kafka.topics import dlq_spec, enforce_topic_configs, ensure_topics
from pipeline.settings import Settings
from pipeline.sinks.backend import open_backend
from pipeline.sinks.indexer import IndexSetup, install_index

log = structlog.get_logger(__name__)


@dataclass
class SetupReport:
    """What setup created or found."""

    topics_created: list[str] = field(default_factory=list)
    #: Existing topics whose configuration setup changed (e.g. DLQ retention), and how.
    topics_configured: dict[str, dict[str, str]] = field(default_factory=dict)
    index: IndexSetup | None = None
    kibana_objects: int | None = None


async def run_setup(settings: Settings) -> SetupReport:
    """Idempotent: safe to run before every start."""
    report = SetupReport()
    report.topics_created = await ensure_topics(settings)
    report.topics_configured = await enforce_topic_configs(settings, [dlq_spec(settings)])
    backend = open_backend(settings)
    try:
        report.index = await install_index(backend, settings.index_alias)
    finally:
        await backend.close()
    if settings.kibana_url:
        from pipeline.search.kibana import import_saved_objects

        report.kibana_objects = await import_saved_objects(settings)
    return report

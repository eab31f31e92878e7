"""Provisioning (``newswire setup``): Kafka topics, the index template and alias, Kibana
saved objects. Idempotent; not packaging (that is pyproject.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from pipeline.alerts.registry import ensure_alert_topics
from pipeline.kafka.topics import (
    check_feeds_topic,
    dlq_spec,
    enforce_topic_configs,
    ensure_topics,
    replication_warning,
    stories_spec,
)
from pipeline.settings import Settings
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import IndexSetup, install_index
from pipeline.sinks.stories import install_stories_index

log = structlog.get_logger(__name__)


@dataclass
class SetupReport:
    """What setup created or found."""

    topics_created: list[str] = field(default_factory=list)
    #: Existing topics whose configuration setup changed (DLQ retention, the story
    #: window), and how.
    topics_configured: dict[str, dict[str, str]] = field(default_factory=dict)
    index: IndexSetup | None = None
    kibana_objects: int | None = None
    warnings: list[str] = field(default_factory=list)


async def run_setup(settings: Settings) -> SetupReport:
    """Idempotent: safe to run before every start."""
    report = SetupReport()
    replication = replication_warning(settings)
    if replication:
        report.warnings.append(replication)
    report.topics_created = await ensure_topics(settings)
    report.topics_created += await ensure_alert_topics(settings)
    feeds = await check_feeds_topic(settings)  # ConfigError when it cannot work
    if feeds:
        report.warnings.append(feeds)
    report.topics_configured = await enforce_topic_configs(
        settings, [dlq_spec(settings), stories_spec(settings)]
    )
    for warning in report.warnings:
        log.warning("setup.warning", detail=warning)
    backend = open_backend(settings)
    try:
        report.index = await install_index(backend, settings.index_alias)
        await install_stories_index(backend, settings.story_index)
    finally:
        await backend.close()
    if settings.kibana_url:
        from pipeline.search.kibana import import_saved_objects

        report.kibana_objects = await import_saved_objects(settings)
    return report

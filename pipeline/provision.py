"""Provisioning (``newswire setup``): Kafka topics, the index template and alias, Kibana
saved objects. Idempotent; not packaging (that is pyproject.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from pipeline.alerts.registry import ensure_alert_topics
from pipeline.errors import ConfigError
from pipeline.kafka.partitions import PartitionChange, group_members, grow_topics, growth_plan
from pipeline.kafka.topics import (
    TopicSpec,
    article_specs,
    broker_count,
    check_feeds_topic,
    copies_spec,
    dlq_spec,
    enforce_topic_configs,
    ensure_topics,
    partition_counts,
    replica_config,
    replication_problem,
    retention_warning,
)
from pipeline.search.trends import install_trends_index
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend
from pipeline.sinks.engines import open_backend
from pipeline.sinks.indexer import IndexSetup, install_index
from pipeline.sinks.stories import install_stories_index
from pipeline.sinks.story_table import SearchStoryStore
from pipeline.sources.repartition import migrate_poller_state

log = structlog.get_logger(__name__)


@dataclass
class SetupReport:
    """What setup created or found."""

    topics_created: list[str] = field(default_factory=list)
    #: Existing topics whose configuration setup changed (e.g. DLQ retention), and how.
    topics_configured: dict[str, dict[str, str]] = field(default_factory=dict)
    index: IndexSetup | None = None
    kibana_objects: int | None = None
    warnings: list[str] = field(default_factory=list)
    growth: GrowthReport | None = None


async def run_setup(
    settings: Settings,
    *,
    partitions: int | None = None,
    poller_partitions: int | None = None,
    force: bool = False,
) -> SetupReport:
    """Idempotent: safe to run before every start. ``partitions`` / ``poller_partitions``
    raise the topics' partition counts (and are used for topics created now); ``force``
    allows one replica on a multi-broker cluster and a poller partition change while
    pollers run."""
    updates: dict[str, object] = {}
    if partitions is not None:
        updates["topic_partitions"] = partitions
    if poller_partitions is not None:
        updates["poller_partitions"] = poller_partitions
    settings = settings.model_copy(update=updates) if updates else settings
    report = SetupReport()
    brokers = await broker_count(settings)
    level, replication = replication_problem(settings, brokers)
    if level == "error" and not force:
        raise ConfigError(replication)
    for warning in (replication, retention_warning(settings)):
        if warning:
            report.warnings.append(warning)
    if partitions is not None or poller_partitions is not None:
        report.growth = await grow_partitions(settings, partitions, poller_partitions, force=force)
    report.topics_created = await ensure_topics(settings)
    report.topics_created += await ensure_alert_topics(settings)
    await check_feeds_topic(settings)  # ConfigError when it cannot work
    replicas = replica_config(settings)  # min.insync.replicas on every topic (RF >= 2)
    specs = [
        TopicSpec(spec.name, spec.partitions, {**replicas, **spec.config})
        for spec in (
            *article_specs(settings),
            copies_spec(settings),
            dlq_spec(settings),
        )
    ] + [
        TopicSpec(topic, settings.poller_partitions, replicas) for topic in poller_topics(settings)
    ]
    report.topics_configured = await enforce_topic_configs(settings, specs)
    for warning in report.warnings:
        log.warning("setup.warning", detail=warning)
    backend = open_backend(settings)
    try:
        report.index = await install_index(backend, settings.index_alias, settings)
        await install_stories_index(backend, settings.story_index)
        await install_trends_index(backend, settings.trend_index)
        await install_story_table(backend, settings)
    finally:
        await backend.close()
    if settings.kibana_url:
        from pipeline.search.kibana import import_saved_objects

        report.kibana_objects = await import_saved_objects(settings)
    return report


async def install_story_table(backend: SearchBackend, settings: Settings) -> None:
    """The index template of the story table's day indices (put again by every setup: it
    carries the mapping this version looks up)."""
    store = SearchStoryStore(
        backend, settings.story_table_index, window_seconds=settings.story_window_days * 86400
    )
    await store.install()


def article_topics(settings: Settings) -> list[str]:
    """The topics keyed by article id (``NEWSWIRE_TOPIC_PARTITIONS``). The story table is
    not among them: it lives in the search engine, shared by every worker, so more
    partitions change nothing for it."""
    return [settings.topic_raw, settings.topic_enriched, settings.topic_dlq, settings.topic_copies]


def poller_topics(settings: Settings) -> list[str]:
    """The topics keyed by feed (``NEWSWIRE_POLLER_PARTITIONS``)."""
    return [settings.topic_feeds, settings.topic_poller_state]


@dataclass
class GrowthReport:
    """What ``setup --partitions / --poller-partitions`` changed."""

    changes: list[PartitionChange]
    state_moved: int = 0
    state_tombstoned: int = 0


async def grow_partitions(
    settings: Settings,
    partitions: int | None = None,
    poller_partitions: int | None = None,
    *,
    force: bool = False,
) -> GrowthReport:
    """Raise the article topics to ``partitions`` and the poller topics to
    ``poller_partitions`` (each when given), moving the feeds' state along. Refuses while
    pollers run (their feed map would change under them) unless ``force``."""
    report = GrowthReport(changes=[])
    if partitions is not None:
        wanted = dict.fromkeys(article_topics(settings), partitions)
        report.changes += await grow_topics(settings, wanted)
    if poller_partitions is not None:
        wanted = dict.fromkeys(poller_topics(settings), poller_partitions)
        plan = growth_plan(await partition_counts(settings, wanted), wanted)
        if plan and not force:
            members = await group_members(settings, settings.poller_group)
            if members:
                raise ConfigError(
                    f"{members} poller(s) are running (group {settings.poller_group}): stop "
                    "them before changing NEWSWIRE_POLLER_PARTITIONS (or pass --force)"
                )
        report.changes += await grow_topics(settings, wanted)
        report.state_moved, report.state_tombstoned = await migrate_poller_state(
            settings, poller_partitions
        )
    return report

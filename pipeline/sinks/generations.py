"""Index generations behind the alias: rollover, where an id lives, retirement.

The alias (``newswire-articles``) points at every generation (``newswire-articles-000001``,
``-000002``, ...); exactly one is its write index. External versions hold per concrete
index, so a revision of an article must be written to the generation that already holds
it, never to the write index beside it: :func:`locate` finds that generation (one ``ids``
search across the alias per bulk request) and the indexer writes there. Rollover goes
through the core rollover API (no ILM needed) and refreshes the old generation at once, so
that the ``ids`` search sees every document it holds from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)


# ----------------------------------------------------------------------------- pure


def rollover_conditions(settings: Settings) -> dict[str, Any]:
    """The rollover API's ``conditions`` from the settings (any one met rolls over)."""
    conditions: dict[str, Any] = {}
    if settings.index_rollover_max_primary_shard_size:
        conditions["max_primary_shard_size"] = settings.index_rollover_max_primary_shard_size
    if settings.index_rollover_max_docs:
        conditions["max_docs"] = settings.index_rollover_max_docs
    if settings.index_rollover_max_age:
        conditions["max_age"] = settings.index_rollover_max_age
    return conditions


def index_settings(settings: Settings, component: Mapping[str, Any]) -> dict[str, Any]:
    """The settings component template with the configured shard and replica counts."""
    body = {**component, "template": {**component.get("template", {})}}
    template_settings = dict(body["template"].get("settings", {}))
    index = dict(template_settings.get("index", {}))
    index["number_of_shards"] = settings.index_shards
    if settings.index_replicas is None:
        index["auto_expand_replicas"] = "0-1"
        index.pop("number_of_replicas", None)
    else:
        index.pop("auto_expand_replicas", None)
        index["number_of_replicas"] = settings.index_replicas
    template_settings["index"] = index
    body["template"]["settings"] = template_settings
    return body


def locate_query(ids: Sequence[str]) -> dict[str, Any]:
    """The search that finds which generation holds each of ``ids`` (no source read).

    ``size`` leaves room for an id held twice (a duplicate from before generations)."""
    return {
        "query": {"ids": {"values": list(ids)}},
        "_source": False,
        "size": 2 * len(ids) + 10,
        "track_total_hits": False,
    }


def placement(hits: Iterable[Mapping[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Id -> concrete index from the ``ids`` search's hits, and the ids held more than once
    (the highest generation wins: it sorts last by name)."""
    where: dict[str, str] = {}
    twice: list[str] = []
    for hit in hits:
        doc_id, index = str(hit["_id"]), str(hit["_index"])
        known = where.get(doc_id)
        if known is not None:
            twice.append(doc_id)
            index = max(known, index)
        where[doc_id] = index
    return where, twice


def previous_generation(name: str) -> str | None:
    """The generation made just before ``name`` (``x-000007`` -> ``x-000006``), by name."""
    prefix, _, number = name.rpartition("-")
    if not prefix or not number.isdigit() or int(number) <= 1:
        return None
    return f"{prefix}-{int(number) - 1:0{len(number)}d}"


def window_duplicates(
    old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Delete operations for the copies a rollover window left twice (pure).

    ``old`` and ``new`` are realtime ``mget`` answers for the same ids in the generation
    before the rollover and in the write index. Of an id found in both, the copy with the
    lower external version goes (the old generation's on a tie); the delete is conditional
    on that copy's sequence number, so a revision written meanwhile is never deleted."""
    found_new = {str(d["_id"]): d for d in new if d.get("found")}
    out: list[dict[str, Any]] = []
    for doc in old:
        twin = found_new.get(str(doc["_id"]))
        if not doc.get("found") or twin is None:
            continue
        loser = doc if int(doc["_version"]) <= int(twin["_version"]) else twin
        out.append(
            {
                "delete": {
                    "_index": loser["_index"],
                    "_id": loser["_id"],
                    "if_seq_no": loser["_seq_no"],
                    "if_primary_term": loser["_primary_term"],
                }
            }
        )
    return out


@dataclass(frozen=True)
class Generation:
    """One concrete index behind the alias."""

    name: str
    write: bool
    docs: int
    bytes: int
    created: datetime | None
    newest_fetched: datetime | None = None


def retire_candidates(
    generations: Sequence[Generation],
    now: datetime,
    retention_days: float | None,
    *,
    empty: bool = False,
) -> list[Generation]:
    """The generations to delete: never the write index; those whose newest article was
    fetched before ``now - retention``, and with ``empty`` those holding no document (left
    behind by ``reprocess --relocate``). One whose newest article is unknown is kept."""
    cutoff = now - timedelta(days=retention_days) if retention_days is not None else None
    return [
        g
        for g in generations
        if not g.write
        and (
            (empty and g.docs == 0)
            or (cutoff is not None and g.newest_fetched is not None and g.newest_fetched < cutoff)
        )
    ]


def _epoch_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------ I/O


async def locate(backend: SearchBackend, alias: str, ids: Sequence[str]) -> dict[str, str]:
    """Which generation holds each of ``ids`` (ids in none are absent from the answer)."""
    if not ids:
        return {}
    answer = await backend.search(alias, locate_query(ids))
    where, twice = placement(answer.get("hits", {}).get("hits", []))
    if twice:
        log.warning("index.id_in_two_generations", ids=sorted(set(twice))[:20], kept="newest")
    return where


async def list_generations(
    backend: SearchBackend, alias: str, *, newest_fetched: bool = False
) -> list[Generation]:
    """The generations behind ``alias``, oldest first; with ``newest_fetched``, each with
    the ``fetched_at`` of its newest article (one small aggregation per generation)."""
    writes = await backend.alias_indices(alias)
    stats = {str(row.get("index")): row for row in await backend.index_stats(alias)}
    out: list[Generation] = []
    for name in sorted(writes):
        row = stats.get(name, {})
        newest = None
        if newest_fetched:
            agg = await backend.search(
                name,
                {"size": 0, "aggs": {"newest": {"max": {"field": "fetched_at"}}}},
            )
            newest = _epoch_ms(agg.get("aggregations", {}).get("newest", {}).get("value"))
        out.append(
            Generation(
                name=name,
                write=writes[name],
                docs=int(row.get("docs.count") or 0),
                bytes=int(row.get("pri.store.size") or 0),
                created=_epoch_ms(row.get("creation.date")),
                newest_fetched=newest,
            )
        )
    return out


@dataclass
class RolloverResult:
    """What a rollover request did."""

    rolled_over: bool
    old_index: str | None
    new_index: str | None
    conditions: dict[str, bool] = field(default_factory=dict)
    dry_run: bool = False


async def rollover(
    backend: SearchBackend,
    alias: str,
    conditions: Mapping[str, Any],
    *,
    force: bool = False,
    dry_run: bool = False,
) -> RolloverResult:
    """Roll ``alias`` over to a new generation when a condition is met (or ``force``).

    The new index takes its mapping and settings from the index template. The old
    generation is refreshed right after, so the indexer's ``ids`` search finds every
    document written to it before the switch."""
    if not force and not conditions:
        raise ConfigError(
            "no rollover limit is set (NEWSWIRE_INDEX_ROLLOVER_MAX_*): give one, or --now"
        )
    answer = await backend.rollover(alias, {} if force else dict(conditions), dry_run=dry_run)
    result = RolloverResult(
        rolled_over=bool(answer.get("rolled_over")),
        old_index=answer.get("old_index"),
        new_index=answer.get("new_index"),
        conditions={str(k): bool(v) for k, v in (answer.get("conditions") or {}).items()},
        dry_run=dry_run,
    )
    if result.rolled_over and result.old_index:
        await backend.refresh(result.old_index)
        log.info("index.rolled_over", alias=alias, old=result.old_index, new=result.new_index)
    return result


async def retire(
    backend: SearchBackend,
    alias: str,
    retention_days: float | None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    empty: bool = False,
) -> list[Generation]:
    """Delete the generations past retention, or empty (:func:`retire_candidates`)."""
    await backend.refresh(alias)  # document counts of what was just written or moved
    generations = await list_generations(backend, alias, newest_fetched=True)
    doomed = retire_candidates(generations, now or datetime.now(UTC), retention_days, empty=empty)
    for generation in doomed:
        if not dry_run:
            await backend.delete_index(generation.name)
        log.info(
            "index.generation_retired",
            index=generation.name,
            docs=generation.docs,
            newest_fetched=str(generation.newest_fetched),
            dry_run=dry_run,
        )
    return doomed


__all__ = [
    "Generation",
    "RolloverResult",
    "index_settings",
    "list_generations",
    "locate",
    "placement",
    "previous_generation",
    "retire",
    "retire_candidates",
    "rollover",
    "rollover_conditions",
    "window_duplicates",
]

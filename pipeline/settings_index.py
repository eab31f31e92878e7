"""The settings of the index's life (generations, rollover, retention, snapshots) and of
the side indexes, a part of the one :class:`pipeline.settings.Settings`: kept apart so
that module stays readable."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class IndexLifecycleFields(BaseModel):
    """Fields of :class:`~pipeline.settings.Settings`: ``NEWSWIRE_INDEX_*``, ``_SNAPSHOT_*``."""

    trend_index: str = Field(
        "newswire-trends",
        description="NEWSWIRE_TREND_INDEX: the rising values `newswire trends --record` "
        "computed, one document per facet, value and hour (Kibana's rising panels read it).",
    )
    index_shards: int = Field(
        1,
        ge=1,
        description="NEWSWIRE_INDEX_SHARDS: primary shards of each new index generation "
        "(aim for 10-50 GB per shard; the rollover limits below keep a generation that size).",
    )
    index_replicas: int | None = Field(
        None,
        ge=0,
        description="NEWSWIRE_INDEX_REPLICAS: replicas of each new generation; unset = "
        "`auto_expand_replicas` 0-1 (one replica once a second node joins).",
    )
    index_rollover_max_primary_shard_size: str | None = Field(
        "50gb",
        description="NEWSWIRE_INDEX_ROLLOVER_MAX_PRIMARY_SHARD_SIZE: a new generation once a "
        "primary shard of the write index is this big (e.g. 50gb); empty = no size limit.",
    )
    index_rollover_max_docs: int | None = Field(
        200_000_000,
        ge=1,
        description="NEWSWIRE_INDEX_ROLLOVER_MAX_DOCS: a new generation once the write index "
        "holds this many documents; unset = no document limit.",
    )
    index_rollover_max_age: str | None = Field(
        None,
        description="NEWSWIRE_INDEX_ROLLOVER_MAX_AGE: a new generation once the write index is "
        "this old (e.g. 30d); unset = no age limit.",
    )
    index_rollover_check_seconds: float = Field(
        300.0,
        ge=0,
        description="NEWSWIRE_INDEX_ROLLOVER_CHECK_SECONDS: how often the worker's sink checks "
        "the rollover limits (the core rollover API; `newswire index rollover` does the same "
        "by hand or from cron); 0 = the worker never rolls over.",
    )
    index_lifecycle: Literal["auto", "core"] = Field(
        "auto",
        description="NEWSWIRE_INDEX_LIFECYCLE: `auto` = where the cluster runs ILM, `setup` "
        "puts an ILM policy with the rollover limits and retention below and ILM rolls over "
        "and deletes (the worker's check and `index rollover/retire` stand down); elsewhere "
        "Newswire does it through the core APIs. `core` = always Newswire, never ILM.",
    )
    index_retention_days: float | None = Field(
        None,
        gt=0,
        description="NEWSWIRE_INDEX_RETENTION_DAYS: `newswire index retire` deletes whole "
        "generations whose newest article was fetched longer ago than this; unset = keep "
        "everything (the default).",
    )
    snapshot_repository: str = Field(
        "newswire-snapshots",
        description="NEWSWIRE_SNAPSHOT_REPOSITORY: name of the snapshot repository "
        "`newswire snapshot` registers and uses.",
    )
    snapshot_location: str | None = Field(
        None,
        description="NEWSWIRE_SNAPSHOT_LOCATION: folder of the filesystem snapshot repository, "
        "as the search nodes see it (it must be under their `path.repo`; on every node for a "
        "cluster, e.g. a shared mount); unset with the local stack: its node's `path.repo`, "
        "`<home>/elasticsearch/snapshots`.",
    )

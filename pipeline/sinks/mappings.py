"""How the article mapping evolves on a live index (``newswire setup``), and the checks that
keep a release from sending documents to the DLQ en masse.

The mapping is strict: a field the index does not know makes every document carrying it
fail with 400. So (1) ``setup`` refuses a release whose records carry a field the mapping
file does not declare (:func:`unmapped_fields`), (2) fields added to the mapping file are
added to every generation behind the alias in place (the put-mapping API: additive
changes apply to live indices), and (3) a change that cannot apply in place (a field's
type changed) is reported: it takes a new generation and ``reprocess --relocate``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin

import structlog
from pydantic import BaseModel

from pipeline.errors import RetryableError
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)

#: Field parameters a put-mapping request may change on an existing field.
UPDATABLE_PARAMS = frozenset({"ignore_above", "fields", "properties", "meta"})


@dataclass
class MappingDiff:
    """What it takes to bring a live mapping to the wanted one."""

    #: Properties to add (a put-mapping body's ``properties``), nested as in the mapping.
    additions: dict[str, Any] = field(default_factory=dict)
    #: Dotted paths whose definition changed in a way no live index accepts.
    conflicts: list[str] = field(default_factory=list)

    @property
    def added_paths(self) -> list[str]:
        return _leaf_paths(self.additions)


def _leaf_paths(properties: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, spec in properties.items():
        inner = spec.get("properties") if isinstance(spec, Mapping) else None
        if inner:
            paths.extend(_leaf_paths(inner, f"{prefix}{name}."))
        else:
            paths.append(f"{prefix}{name}")
    return paths


def _type(spec: Mapping[str, Any]) -> str:
    return str(spec.get("type", "object"))


def mapping_diff(
    live: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = ""
) -> MappingDiff:
    """Compare two mappings' ``properties`` (pure). Fields of ``live`` that ``wanted``
    lacks are left alone: a field is never removed from a live index."""
    diff = MappingDiff()
    live_props: Mapping[str, Any] = live.get("properties", {})
    for name, spec in wanted.get("properties", {}).items():
        path = f"{prefix}{name}"
        have = live_props.get(name)
        if have is None:
            diff.additions[name] = spec
            continue
        if _type(have) != _type(spec):
            diff.conflicts.append(f"{path} ({_type(have)} -> {_type(spec)})")
            continue
        for param in set(spec) | set(have):
            if param in UPDATABLE_PARAMS or param == "type":
                continue
            if spec.get(param) != have.get(param):
                diff.conflicts.append(f"{path} ({param}: {have.get(param)} -> {spec.get(param)})")
        if "properties" in spec:
            inner = mapping_diff(have, spec, f"{path}.")
            if inner.additions:
                diff.additions[name] = {"properties": inner.additions}
            diff.conflicts.extend(inner.conflicts)
        missing_fields = {
            k: v for k, v in spec.get("fields", {}).items() if k not in have.get("fields", {})
        }
        if missing_fields:
            diff.additions[name] = {**spec, "fields": {**have.get("fields", {}), **missing_fields}}
    return diff


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, tuple):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def unmapped_fields(
    model: type[BaseModel], mapping: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """Dotted paths of the fields ``model``'s documents carry that ``mapping`` does not
    declare (a strict index would refuse every such document). Objects mapped with
    ``enabled: false`` are not looked into."""
    missing: list[str] = []
    properties: Mapping[str, Any] = mapping.get("properties", {})
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        spec = properties.get(name)
        if spec is None:
            missing.append(path)
            continue
        if spec.get("enabled") is False:
            continue
        nested = _models_in(info.annotation)
        if len(nested) == 1:
            missing.extend(unmapped_fields(nested[0], spec, f"{path}."))
    return missing


# ------------------------------------------------------------------------------ I/O


@dataclass
class MappingChanges:
    """What ``setup`` did to the live generations' mappings."""

    added: dict[str, list[str]] = field(default_factory=dict)  # index -> dotted paths
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # index -> changes


async def evolve_mappings(
    backend: SearchBackend, alias: str, wanted: Mapping[str, Any]
) -> MappingChanges:
    """Add the fields ``wanted`` declares to every generation behind ``alias`` that lacks
    them (in place, no reindex); changes that cannot apply in place are returned."""
    changes = MappingChanges()
    for index, live in sorted((await backend.get_mapping(alias)).items()):
        diff = mapping_diff(live, wanted)
        if diff.additions:
            await backend.put_mapping(index, {"properties": diff.additions})
            changes.added[index] = diff.added_paths
        if diff.conflicts:
            changes.conflicts[index] = diff.conflicts
    for index, paths in changes.added.items():
        log.info("index.mapping_fields_added", index=index, fields=paths)
    return changes


async def check_index(backend: SearchBackend, alias: str, model: type[BaseModel]) -> None:
    """What a worker checks before writing, instead of installing templates itself (an
    operator's changes in the cluster are never overwritten at start): the alias exists
    and its write index maps every field this version writes. Raises
    :class:`RetryableError` otherwise, so the sink waits, saying why, until ``newswire
    setup`` is run; a document is never sent to the DLQ for it."""
    writes = await backend.alias_indices(alias)
    write = next((name for name, is_write in writes.items() if is_write), None)
    if write is None:
        raise RetryableError(
            f"no write index behind the alias {alias!r}: run `newswire setup` (the worker "
            "no longer installs templates itself)"
        )
    live = (await backend.get_mapping(write)).get(write, {})
    missing = unmapped_fields(model, live)
    if missing:
        raise RetryableError(
            f"the mapping of {write} is older than this version: it lacks {missing}; run "
            "`newswire setup` (it adds them in place, no downtime)"
        )


__all__ = [
    "MappingChanges",
    "MappingDiff",
    "check_index",
    "evolve_mappings",
    "mapping_diff",
    "unmapped_fields",
]

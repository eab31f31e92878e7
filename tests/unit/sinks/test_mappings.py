"""Mapping evolution: what applies in place, what does not, fields the mapping lacks."""

from __future__ import annotations

import copy

from pipeline.models import EnrichedArticle
from pipeline.sinks.mappings import mapping_diff, unmapped_fields
from pipeline.sinks.templates import load_templates


def test_the_shipped_mapping_declares_every_field_articles_carry() -> None:
    mapping = load_templates("standard").mappings
    assert unmapped_fields(EnrichedArticle, mapping) == []


def test_a_field_the_mapping_lacks_is_named_with_its_path() -> None:
    mapping = copy.deepcopy(load_templates("standard").mappings)
    del mapping["properties"]["enrichment_version"]
    del mapping["properties"]["source"]["properties"]["domain"]
    assert unmapped_fields(EnrichedArticle, mapping) == ["source.domain", "enrichment_version"]


def test_additions_apply_in_place_and_identical_mappings_need_nothing() -> None:
    wanted = load_templates("standard").mappings
    assert mapping_diff(wanted, wanted).additions == {}
    live = copy.deepcopy(wanted)
    del live["properties"]["enrichment_version"]
    del live["properties"]["topics"]["properties"]["score"]
    del live["properties"]["title"]["fields"]
    diff = mapping_diff(live, wanted)
    assert diff.conflicts == []
    assert sorted(diff.added_paths) == ["enrichment_version", "title", "topics.score"]
    assert diff.additions["title"]["fields"]["raw"]["type"] == "keyword"


def test_a_changed_type_cannot_apply_in_place() -> None:
    wanted = load_templates("standard").mappings
    live = copy.deepcopy(wanted)
    live["properties"]["word_count"] = {"type": "keyword"}
    live["properties"]["entities"]["properties"]["person"] = {"type": "text"}
    live["properties"]["url"]["ignore_above"] = 100  # updatable: not a conflict
    diff = mapping_diff(live, wanted)
    assert sorted(diff.conflicts) == [
        "entities.person (text -> keyword)",
        "word_count (keyword -> integer)",
    ]
    assert "url" not in diff.additions


def test_fields_only_live_are_left_alone() -> None:
    wanted = load_templates("standard").mappings
    live = copy.deepcopy(wanted)
    live["properties"]["operator_field"] = {"type": "keyword"}
    diff = mapping_diff(live, wanted)
    assert diff.additions == {} and diff.conflicts == []

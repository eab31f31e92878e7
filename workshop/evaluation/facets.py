"""Facet precision: the top values of each entity facet over bbc-dev, type errors marked.

A value is wrong by the rule of :func:`facet_value_error` (a team or party as a person, a
country as an organisation, ...) or when most articles type it as another facet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pipeline.enrich.canonical import load_alias_table, normalize_key
from pipeline.enrich.entities import countries

FACET_TOP = 20

#: Words that make a value a team, party, institution or award, never one person or place.
NON_PERSON_WORDS = frozenset(
    {"party", "dem", "dems", "democrats", "republicans", "labour", "tory", "tories",
     "conservatives", "liberals", "united", "city", "rovers", "athletic", "wanderers", "fc",
     "club", "council", "committee", "commission", "association", "federation", "league",
     "union", "bank", "group", "plc", "inc", "corp", "ltd", "university", "institute",
     "ministry", "department", "government", "parliament", "office", "agency", "court",
     "oscar", "oscars", "bafta", "baftas", "grammy", "grammys", "emmy", "emmys", "globes",
     "award", "awards", "prize", "cup", "championship", "championships", "olympics", "games",
     "news", "times", "bbc", "itv", "airways", "airlines", "motors"}
)  # fmt: skip
_NON_ORG_KINDS = frozenset({"location", "person"})


def facet_value_error(facet: str, value: str) -> str | None:
    """Why ``value`` is a type error in the ``facet`` (person/organization/location), or None.

    The rule, deliberately simple (plus, in :func:`facet_precision`, a value that the
    pipeline itself types otherwise in most articles): a person value that holds a word of
    a party, team, institution or award (:data:`NON_PERSON_WORDS`: "Lib Dem", "Manchester United",
    "Oscar"), or that the alias table / country list names as something else; an
    organisation that is a country or a curated place or person; a place that holds such a
    word or that the alias table names as an organisation or a person."""
    words = {w.strip(".,'’").casefold() for w in value.replace("-", " ").split()}
    entry = load_alias_table().lookup(value)
    is_country = normalize_key(value) in countries()
    if facet == "person":
        if words & NON_PERSON_WORDS:
            return "party, team, institution or award"
        if is_country or (entry is not None and entry.type != "person"):
            return f"a known {entry.type if entry else 'location'}"
    elif facet == "organization":
        if is_country and (entry is None or entry.type == "location"):
            return "a country"
        if entry is not None and entry.type in _NON_ORG_KINDS:
            return f"a known {entry.type}"
    elif facet == "location":
        if entry is not None and entry.type != "location":
            return f"a known {entry.type}"
        if not is_country and words & (NON_PERSON_WORDS - {"city", "united"}):
            return "party, team, institution or award"
    return None


def facet_precision(records: Sequence[dict[str, Any]], top: int = FACET_TOP) -> dict[str, Any]:
    """Top values of each entity facet (document counts, as a terms aggregation gives them),
    the wrong ones marked by :func:`facet_value_error`, and their count."""
    out: dict[str, Any] = {}
    total_wrong = 0
    facets = ("person", "organization", "location", "misc")
    counts: dict[str, Counter[str]] = {f: Counter() for f in facets}
    for record in records:
        for facet in facets:
            counts[facet].update(set((record.get("entities") or {}).get(facet, [])))
    for facet in facets[:3]:
        rows = []
        for value, n in sorted(counts[facet].items(), key=lambda vn: (-vn[1], vn[0]))[:top]:
            reason = facet_value_error(facet, value)
            if reason is None:
                other = max(facets, key=lambda f: counts[f][value])
                if other != facet and counts[other][value] > n:
                    reason = f"typed {other} in most articles ({counts[other][value]} vs {n})"
            rows.append({"value": value, "count": n, "wrong": reason})
        wrong = sum(1 for r in rows if r["wrong"])
        total_wrong += wrong
        out[facet] = {"top": rows, "wrong": wrong}
    out["wrong_total"] = total_wrong
    return out

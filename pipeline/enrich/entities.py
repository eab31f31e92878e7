"""From spaCy entity spans to typed, cleaned, canonical mentions of one article.

The spaCy side (:func:`spans_from_doc`) is thin; the rest works on plain strings and
offsets so it can be unit-tested without a model.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pipeline.enrich.canonical import (
    AliasTable,
    clean_mention,
    link_person_names,
    load_alias_table,
    normalize_key,
    short_forms,
    strip_titles,
)
from pipeline.models import Entities, EntityType, Mention

FieldName = Literal["title", "summary", "body"]
FIELD_NAMES: tuple[FieldName, ...] = ("title", "summary", "body")

# OntoNotes labels of the English model -> the four facet types (numbers, dates... dropped)
LABEL_TO_TYPE: dict[str, EntityType] = {
    "PERSON": "person",
    "ORG": "organization",
    "GPE": "location",
    "LOC": "location",
    "FAC": "location",
    "NORP": "misc",
    "EVENT": "misc",
    "WORK_OF_ART": "misc",
    "LAW": "misc",
    "PRODUCT": "misc",
    "LANGUAGE": "misc",
    # Stanford CoreNLP's CRF tags (3-class model; MISC from the 4-class one)
    "ORGANIZATION": "organization",
    "LOCATION": "location",
    "MISC": "misc",
}


@dataclass(frozen=True, slots=True)
class Span:
    """An entity span as the model gave it: label and character offsets into one field."""

    label: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RawMention:
    """A cleaned, typed mention before canonicalisation."""

    type: EntityType
    name: str  # cleaned, title-stripped text (== field text[start:end])
    field: FieldName
    start: int
    end: int


def spans_from_doc(doc: Any) -> list[Span]:
    """The entity spans of a spaCy ``Doc``."""
    return [Span(ent.label_, ent.start_char, ent.end_char) for ent in doc.ents]


def clean_spans(text: str, spans: Iterable[Span], field: FieldName) -> list[RawMention]:
    """Map labels to types, trim punctuation / possessives and leading titles.

    Offsets move with every trim, so ``text[m.start:m.end] == m.name`` always holds.
    """
    out: list[RawMention] = []
    for span in spans:
        etype = LABEL_TO_TYPE.get(span.label)
        if etype is None:
            continue
        start, end = span.start, span.end
        trim = clean_mention(text[start:end])
        start, end = start + trim.left, end - trim.right
        if start >= end:
            continue
        name = text[start:end]
        if etype == "person":
            stripped = strip_titles(name)
            start += stripped.left
            name = text[start:end]
        if not _plausible(name):
            continue
        out.append(RawMention(etype, name, field, start, end))
    return out


def _plausible(name: str) -> bool:
    return (
        any(ch.isupper() or ch.isdigit() for ch in name)
        and any(ch.isalpha() for ch in name)
        and len(name) <= 120
        and "\n" not in name
    )


@lru_cache(maxsize=1)
def countries() -> dict[str, str]:
    """Country (and territory) names: lookup key -> the listed spelling."""
    raw = resources.files("pipeline.data").joinpath("countries.txt").read_text("utf-8")
    names = (line.strip() for line in raw.splitlines())
    return {normalize_key(n): n for n in names if n and not n.startswith("#")}


# names that are also common given names: never turn a person into a place
_PERSON_AMBIGUOUS_PLACES = frozenset({"jordan", "chad", "georgia", "israel", "kenya", "india"})


_AGENCIES = r"(?:Reuters|AP|AFP|dpa|DPA|Xinhua|UPI|Bloomberg|IANS|PTI|ANSA|EFE|Interfax|TASS|Kyodo)"
_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_PLACE_WORDS = r"[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,3}"
# Wire datelines: "MOSCOW (Reuters) -", "LONDON, Dec 15 (AP) -", "IRVINE, Calif 1996-08-30"
_DATELINE_RE = re.compile(
    rf"^[ \t]*(?P<place>{_PLACE_WORDS})(?:[ \t]*,[ \t]*(?P<region>{_PLACE_WORDS}))?"
    rf"(?=[ \t]+\d{{4}}-\d\d-\d\d|[ \t]*\({_AGENCIES}\)|[ \t]*,[ \t]*{_MONTHS}[ \t]+\d{{1,2}}\b)",
    re.MULTILINE,
)


def place_mentions(view: str, field: FieldName, found: Sequence[RawMention]) -> list[RawMention]:
    """Add the places of wire datelines ("MOSCOW (Reuters) -"), which the model misses.

    A dateline place replaces whatever the model found at that position. (A rule adding
    country names the model missed was dropped: +0.000 CoNLL dev F1 under CoreNLP.)
    """
    out = list(found)
    for m in _DATELINE_RE.finditer(view):
        for group in ("place", "region"):
            start, end = m.start(group), m.end(group)
            if start < 0:
                continue
            out = [x for x in out if x.end <= start or x.start >= end]
            out.append(RawMention("location", view[start:end], field, start, end))
    out.sort(key=lambda x: x.start)
    return out


@dataclass(frozen=True, slots=True)
class ArticleEntities:
    """The canonical result for one article."""

    entities: Entities
    mentions: list[Mention]


def canonicalize(
    mentions: Sequence[RawMention], aliases: AliasTable | None = None
) -> ArticleEntities:
    """Give every mention of one article its canonical name and a consistent type.

    1. the curated alias table decides name and type for well-known names;
    2. person names link to the longest full name they abbreviate in the same article
       ("Kerry" -> "John Kerry", "Ozzy" -> "Ozzy Osbourne"), also when the model typed the
       short form as a place or organisation; a short form two full names share stays a
       mention but is not listed as an entity (no "Osbourne" next to "Ozzy Osbourne");
    3. the remaining names are grouped case-insensitively; the group's type is the one the
       model gave most often and its spelling the most common non-ALL-CAPS one.
    """
    table = aliases if aliases is not None else load_alias_table()
    resolved: list[RawMention] = []
    canon: list[str] = []
    fixed_type: list[bool] = []
    places = countries()
    for m in mentions:
        entry = table.lookup(m.name)
        key = normalize_key(m.name)
        if entry is not None:
            resolved.append(replace(m, type=entry.type))
            canon.append(entry.canonical)
            fixed_type.append(True)
        elif key in places and not (m.type == "person" and key in _PERSON_AMBIGUOUS_PLACES):
            resolved.append(replace(m, type="location"))
            canon.append(places[key] if not m.name.isupper() or len(m.name) > 4 else m.name)
            fixed_type.append(True)
        else:
            resolved.append(m)
            canon.append(_tidy(m.name))
            fixed_type.append(False)

    # person linking, over all person names of the article
    person_names = [
        canon[i] for i, m in enumerate(resolved) if m.type == "person" and not fixed_type[i]
    ]
    person_names += [
        canon[i] for i, m in enumerate(resolved) if m.type == "person" and fixed_type[i]
    ]
    links = link_person_names(person_names)
    surnames: dict[str, str] = {}
    for full in set(links.values()):
        parts = full.split()
        if len(parts) >= 2:
            surnames.setdefault(normalize_key(parts[-1].split("-")[-1]), full)
    for i, m in enumerate(resolved):
        if fixed_type[i]:
            continue
        if m.type == "person":
            canon[i] = links.get(canon[i], canon[i])
        elif " " not in canon[i] and normalize_key(canon[i]) in surnames:
            # "Kerry" typed as a place while "John Kerry" is in the article
            resolved[i] = replace(m, type="person")
            canon[i] = surnames[normalize_key(canon[i])]

    # group by key: one type and one spelling per entity
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(canon):
        groups[normalize_key(name)].append(i)
    for idx in groups.values():
        fixed = [i for i in idx if fixed_type[i]]
        if fixed:
            etype = resolved[fixed[0]].type
        else:
            votes = Counter(resolved[i].type for i in idx)
            etype = max(
                votes, key=lambda t: (votes[t], -idx[[resolved[i].type for i in idx].index(t)])
            )
        spellings = Counter(canon[i] for i in idx)
        spelling = max(spellings, key=lambda s: (not s.isupper(), spellings[s], -len(s)))
        for i in idx:
            resolved[i] = replace(resolved[i], type=etype)
            canon[i] = spelling

    out_mentions = [
        Mention(
            type=m.type, text=m.name, canonical=canon[i], field=m.field, start=m.start, end=m.end
        )
        for i, m in enumerate(resolved)
    ]
    # a short form left unresolved (two full names share it) stays a mention, not a facet value
    hidden = short_forms(m.canonical for m in out_mentions if m.type == "person")
    listed = [m for m in out_mentions if not (m.type == "person" and m.canonical in hidden)]
    return ArticleEntities(entities=_entity_lists(listed), mentions=out_mentions)


def _tidy(name: str) -> str:
    name = " ".join(name.split())
    if name.isupper() and len(name) > 4 and " " in name:
        # ALL-CAPS multi-word headline spelling: "JOHN KERRY" -> "John Kerry"
        return name.title()
    return name


def _entity_lists(mentions: Sequence[Mention]) -> Entities:
    """Canonical names per type, most mentioned first, then by first appearance."""
    order: dict[EntityType, dict[str, int]] = {
        t: {} for t in ("person", "organization", "location", "misc")
    }
    first: dict[tuple[EntityType, str], int] = {}
    for pos, m in enumerate(mentions):
        bucket = order[m.type]
        bucket[m.canonical] = bucket.get(m.canonical, 0) + 1
        first.setdefault((m.type, m.canonical), pos)

    def ranked(t: EntityType) -> list[str]:
        names = order[t]
        return sorted(names, key=lambda n: (-names[n], first[(t, n)]))

    return Entities(
        person=ranked("person"),
        organization=ranked("organization"),
        location=ranked("location"),
        misc=ranked("misc"),
    )

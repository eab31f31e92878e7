"""Canonical entity names: cleaning, title stripping, the alias table, in-article linking.

Everything here is pure string logic (no spaCy), so it is unit-tested directly.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.models import EntityType

ENTITY_TYPES: tuple[EntityType, ...] = ("person", "organization", "location", "misc")

# Quotes, brackets and punctuation that never belong at the edge of a name.
_EDGE_CHARS = "\"'“”‘’«»„‚`´()[]{}<>,;:!?*·•|/\\-–—_~ \t\r\n"
_POSSESSIVE_RE = re.compile(r"(?:['’]s|(?<=s)['’])$", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")
_LEADING_THE_RE = re.compile(r"^the\s+", re.IGNORECASE)
_NAME_PARTICLES = frozenset(
    {"al", "el", "bin", "ibn", "de", "da", "di", "del", "della", "der", "den", "van", "von",
     "la", "le", "du", "dos", "das", "ter", "ten", "mac", "abu", "ben", "st", "st."}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Trim:
    """How many characters to cut from each side of a mention to get the clean name."""

    left: int
    right: int
    text: str


def clean_mention(text: str) -> Trim:
    """Strip edge punctuation and quotes, a possessive and a leading "the".

    Returns the cleaned text together with how much was cut on each side, so a caller can
    move character offsets with it. ``"Syria's"`` -> ``"Syria"``; ``"the United Nations,"``
    -> ``"United Nations"``.
    """
    start, end = 0, len(text)
    changed = True
    while changed and start < end:
        changed = False
        while start < end and text[start] in _EDGE_CHARS:
            start += 1
            changed = True
        # keep a closing dot of an abbreviation ("U.S.", "Corp.") but drop a lone final one
        while start < end and (
            text[end - 1] in _EDGE_CHARS
            or (text[end - 1] == "." and not _ends_with_abbreviation(text[start:end]))
        ):
            end -= 1
            changed = True
        m = _POSSESSIVE_RE.search(text[start:end])
        if m and end - start > len(m.group(0)):
            end -= len(m.group(0))
            changed = True
        m2 = _LEADING_THE_RE.match(text[start:end])
        if m2 and end - start > len(m2.group(0)):
            start += len(m2.group(0))
            changed = True
    return Trim(left=start, right=len(text) - end, text=text[start:end])


def _ends_with_abbreviation(text: str) -> bool:
    last = text.rsplit(None, 1)[-1] if text.strip() else ""
    core = last.rstrip(".")
    # "U.S." / "D.C." / "Inc." / "Jr." keep their dot; "Moscow." does not
    return "." in core or (len(core) <= 3 and core[:1].isupper()) or core in {"Corp", "Bros"}


def normalize_key(name: str) -> str:
    """The lookup key of a name: NFKC, case-folded, no dots, one space, no leading "the"."""
    key = unicodedata.normalize("NFKC", name).casefold()
    key = key.replace("’", "'").replace(".", "")
    key = _SPACE_RE.sub(" ", key).strip()
    return _LEADING_THE_RE.sub("", key)


@lru_cache(maxsize=1)
def person_titles() -> frozenset[str]:
    """Title and role words (lower case) stripped from the front of person names."""
    raw = resources.files("pipeline.data").joinpath("person_titles.txt").read_text("utf-8")
    words = (line.strip().casefold() for line in raw.splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def strip_titles(name: str) -> Trim:
    """Drop leading titles and roles from a person's name.

    ``"US Secretary of State John Kerry"`` -> ``"John Kerry"``, ``"Mr Kerry"`` -> ``"Kerry"``.
    At least one word is always kept, and the kept part must start with a capital letter
    (or a name particle such as "al-" / "de"), so "Prince" alone stays "Prince".
    """
    titles = person_titles()
    words = list(re.finditer(r"\S+", name))
    cut = 0
    while cut < len(words) - 1 and words[cut].group(0).casefold().rstrip(",") in titles:
        cut += 1
    if cut == 0:
        return Trim(0, 0, name)
    first = words[cut].group(0)
    if first.casefold() in titles:  # "Mr President": nothing but titles
        return Trim(0, 0, name)
    if not (first[:1].isupper() or first.casefold().split("-")[0] in _NAME_PARTICLES):
        return Trim(0, 0, name)
    return Trim(left=words[cut].start(), right=0, text=name[words[cut].start() :])


@dataclass(frozen=True, slots=True)
class AliasEntry:
    """One curated entity: its canonical name and type."""

    canonical: str
    type: EntityType


class AliasTable:
    """Case- and dot-insensitive lookup of well-known names and abbreviations."""

    def __init__(self, entries: Iterable[Mapping[str, Any]], version: int | str = 0) -> None:
        self.version = version
        self._by_key: dict[str, AliasEntry] = {}
        for raw in entries:
            canonical = str(raw["canonical"])
            given = str(raw.get("type", "misc"))
            etype = next((t for t in ENTITY_TYPES if t == given), None)
            if etype is None:
                raise ConfigError(f"alias table: {canonical!r} has unknown type {given!r}")
            entry = AliasEntry(canonical, etype)
            for alias in [canonical, *(raw.get("aliases") or [])]:
                key = normalize_key(str(alias))
                if key in self._by_key and self._by_key[key] != entry:
                    raise ConfigError(f"alias table: {alias!r} is listed twice")
                self._by_key[key] = entry

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, name: str) -> AliasEntry | None:
        """The curated entry for ``name`` (any listed spelling), or None."""
        entry = self._by_key.get(normalize_key(name))
        if entry is None and name.isupper() and len(name) > 4:
            # ALL-CAPS headline spelling of a multi-letter name ("UNITED NATIONS")
            entry = self._by_key.get(normalize_key(name.title()))
        return entry

    @classmethod
    def from_yaml(cls, text: str) -> AliasTable:
        """Build from the YAML format of ``pipeline/data/aliases.yaml``."""
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict) or not isinstance(data.get("entities", []), list):
            raise ConfigError("alias table: expected a mapping with an 'entities' list")
        return cls(data.get("entities", []), version=data.get("version", 0))


@lru_cache(maxsize=1)
def load_alias_table() -> AliasTable:
    """The packaged alias table (``pipeline/data/aliases.yaml``), read once."""
    text = resources.files("pipeline.data").joinpath("aliases.yaml").read_text("utf-8")
    return AliasTable.from_yaml(text)


def _name_tokens(name: str) -> list[str]:
    """Comparable tokens of a name: case-folded, "al-Assad" -> "assad"."""
    out: list[str] = []
    for tok in re.split(r"[\s]+", name.casefold()):
        tok = tok.strip(".,")
        for prefix in ("al-", "el-", "ad-", "as-", "bin-", "ibn-"):
            if tok.startswith(prefix) and len(tok) > len(prefix) + 1:
                tok = tok[len(prefix) :]
        if tok and tok not in _NAME_PARTICLES:
            out.append(tok)
    return out


def link_person_names(names: Sequence[str]) -> dict[str, str]:
    """Map each person name in one article to the longest full name it abbreviates.

    ``["John Kerry", "Kerry", "Mr Kerry"]`` -> every one maps to ``"John Kerry"``. A short
    name joins a longer one when its words are the longer name's last words (surname), its
    first word alone (a given name: "Ozzy" -> "Ozzy Osbourne") or a run of 2+ words. If
    two different full names share the short one ("George Bush", "Jeb Bush"), the short
    one is ambiguous and is joined to the more frequent full name only when that one was
    mentioned at least twice as often; otherwise it stays as written.
    """
    counts = Counter(names)
    distinct = sorted(counts, key=lambda n: (-len(_name_tokens(n)), -counts[n], n))
    tokens = {n: _name_tokens(n) for n in distinct}
    result: dict[str, str] = {}
    for name in distinct:
        toks = tokens[name]
        if not toks:
            result[name] = name
            continue
        candidates = [full for full in distinct if _abbreviates(toks, tokens[full])]
        # chain through already-linked longer names
        targets = Counter({result.get(c, c): counts[c] for c in candidates})
        if not targets:
            result[name] = name
            continue
        ranked = targets.most_common()
        if len(ranked) == 1 or ranked[0][1] >= 2 * ranked[1][1]:
            result[name] = ranked[0][0]
        else:
            result[name] = name
    return result


def _abbreviates(short: Sequence[str], full: Sequence[str]) -> bool:
    """``short`` is a shorter form of ``full``: its last words (a surname), its first word
    alone (a given name: "Ozzy" of "Ozzy Osbourne"), or a run of 2+ of its words."""
    if not short or len(full) <= len(short):
        return False
    return (
        list(full[-len(short) :]) == list(short)
        or (len(short) == 1 and full[0] == short[0])
        or _is_subsequence(short, full)
    )


def short_forms(names: Iterable[str]) -> set[str]:
    """The names that abbreviate a longer name of the same list (one article, one type).

    Whatever :func:`link_person_names` could not resolve to one full name ("Osbourne" with
    both "Ozzy Osbourne" and "Sharon Osbourne" in the article) is still such a short form;
    it must not become a facet value of its own next to the full names."""
    unique = set(names)
    tokens = {n: _name_tokens(n) for n in unique}
    return {n for n in unique if any(_abbreviates(tokens[n], tokens[f]) for f in unique)}


def _is_subsequence(short: Sequence[str], long: Sequence[str]) -> bool:
    """True when ``short`` is a contiguous run of ``long`` that ends it or spans 2+ words."""
    n = len(short)
    if n < 2:
        return False
    return any(list(long[i : i + n]) == list(short) for i in range(len(long) - n + 1))

"""The presearcher: which standing queries could match an article, found through an
inverted index of each query's anchor terms (the Luwak / Lucene Monitor idea).

A query's *anchors* are tokens such that every article it matches holds at least one of
them: for AND, the anchors of one operand (the fewest, longest tokens); for OR, the union
of all operands'; a phrase, any one of its tokens; a facet filter, its ``field=value``.
What cannot be anchored soundly (``-x`` alone, ``pre*``, ``word~1``) makes the query a
candidate for every article. The presearcher only narrows: the engine decides each
candidate (:mod:`pipeline.alerts.matcher`), so a loose anchor costs work, never a result.
Tokens are the index's own analysis (``_analyze`` for queries, term vectors for articles):
``analyse`` is passed in, so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.search.query import parse_filter
from pipeline.search.syntax import Group, Node, Not, Phrase, Term, parse_query


class _Any:
    """Cannot be anchored: a candidate for every article."""

    def __repr__(self) -> str:
        return "ANY"


class _Dropped:
    """Analyses to nothing (stop words): the engine leaves the operand out."""

    def __repr__(self) -> str:
        return "DROPPED"


ANY = _Any()
DROPPED = _Dropped()
Anchors = frozenset[str] | _Any | _Dropped
Analyse = Callable[[str], Sequence[str]]


def filter_token(field: str, value: str) -> str:
    """The token a facet value is indexed under (never an analysed word: it has ``\\x1f``)."""
    return f"{field}\x1f{value}"


def _best(options: Sequence[frozenset[str]]) -> frozenset[str]:
    """The narrowest anchor set: fewest tokens, then the longest (rarer) ones."""
    return min(options, key=lambda s: (len(s), -min(len(t) for t in s)))


def anchors(node: Node, analyse: Analyse) -> Anchors:
    """The anchor tokens of ``node`` (see the module's docstring)."""
    if isinstance(node, Term):
        if node.prefix or node.fuzzy:
            return ANY
        tokens = frozenset(analyse(node.text))
        return tokens or DROPPED
    if isinstance(node, Phrase):
        tokens = frozenset(analyse(node.text))
        return frozenset({max(sorted(tokens), key=len)}) if tokens else DROPPED
    if isinstance(node, Not):
        return ANY
    return _group_anchors(node, analyse)


def _group_anchors(group: Group, analyse: Analyse) -> Anchors:
    parts = [anchors(item, analyse) for item in group.items]
    kept = [
        (part, item) for part, item in zip(parts, group.items, strict=True) if part is not DROPPED
    ]
    if not kept:
        return DROPPED
    if all(op == "and" for op in group.ops):
        sets = [part for part, _ in kept if isinstance(part, frozenset)]
        return _best(sets) if sets else ANY
    # OR, or AND and OR mixed (read left to right by the engine): a match needs at least
    # one positive operand to match whatever the grouping, so the union is sound, unless
    # some operand can match by itself without any token (a negation, ``pre*``).
    if any(not isinstance(part, frozenset) for part, _ in kept):
        return ANY
    return frozenset().union(*(part for part, _ in kept if isinstance(part, frozenset)))


def query_anchors(query: str, filters: Sequence[str], analyse: Analyse) -> Anchors:
    """The anchors of a standing query: a facet filter's token when it has one (exact
    and usually rare), else its text's. An empty query with no filter matches all."""
    if filters:
        return frozenset({filter_token(*parse_filter(filters[0]))})
    found = anchors(parse_query(query), analyse)
    return ANY if found is DROPPED else found


@dataclass
class CandidateIndex:
    """Anchor token -> standing query names, plus the queries that are always candidates."""

    by_token: dict[str, set[str]]
    always: set[str]
    anchored: dict[str, Anchors]

    @classmethod
    def empty(cls) -> CandidateIndex:
        return cls({}, set(), {})

    def add(self, name: str, found: Anchors) -> None:
        """Index ``name`` under ``found`` (replacing what it had)."""
        self.remove(name)
        self.anchored[name] = found
        if isinstance(found, frozenset):
            for token in found:
                self.by_token.setdefault(token, set()).add(name)
        else:
            self.always.add(name)

    def remove(self, name: str) -> None:
        old = self.anchored.pop(name, None)
        if isinstance(old, frozenset):
            for token in old:
                names = self.by_token.get(token)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self.by_token[token]
        self.always.discard(name)

    def candidates(self, tokens: Iterable[str]) -> set[str]:
        """The queries an article with ``tokens`` may match."""
        found = set(self.always)
        for token in tokens:
            names = self.by_token.get(token)
            if names:
                found |= names
        return found

    def __len__(self) -> int:
        return len(self.anchored)


def article_tokens(terms: Iterable[str], facets: Mapping[str, Iterable[str]]) -> set[str]:
    """An article's tokens: its analysed text terms and its facet values."""
    tokens = set(terms)
    for field, values in facets.items():
        tokens.update(filter_token(field, value) for value in values)
    return tokens


__all__ = [
    "ANY",
    "DROPPED",
    "Anchors",
    "CandidateIndex",
    "anchors",
    "article_tokens",
    "filter_token",
    "query_anchors",
]

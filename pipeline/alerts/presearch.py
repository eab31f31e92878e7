"""The presearcher: which standing queries could match an article, found through an
inverted index of each query's anchor terms (the Luwak / Lucene Monitor idea).

A query's *anchors* are clauses of tokens such that every article it matches holds at
least one token of each clause: for AND, the clauses of all its operands; for OR, one
clause, the union of each operand's narrowest; a phrase, one clause per token; a facet
filter, its ``field=value``. The query is indexed under its narrowest clause only; the
others are checked when that one hits.
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
#: Clauses that must all hold one of their tokens (a conjunction of disjunctions).
Clauses = tuple[frozenset[str], ...]
Anchors = Clauses | _Any | _Dropped
Analyse = Callable[[str], Sequence[str]]


def filter_token(field: str, value: str) -> str:
    """The token a facet value is indexed under (never an analysed word: it has ``\\x1f``)."""
    return f"{field}\x1f{value}"


def _best(options: Sequence[frozenset[str]]) -> frozenset[str]:
    """The narrowest clause: fewest tokens, then the longest (rarer) ones."""
    return min(options, key=lambda s: (len(s), -min(len(t) for t in s), sorted(s)))


def anchors(node: Node, analyse: Analyse) -> Anchors:
    """The anchor clauses of ``node`` (see the module's docstring): every article that
    matches ``node`` holds a token of each clause."""
    if isinstance(node, Term):
        if node.prefix or node.fuzzy:
            return ANY
        tokens = frozenset(analyse(node.text))
        return (tokens,) if tokens else DROPPED
    if isinstance(node, Phrase):
        words = sorted(set(analyse(node.text)))
        return tuple(frozenset({t}) for t in words) if words else DROPPED
    if isinstance(node, Not):
        return ANY
    return _group_anchors(node, analyse)


def _group_anchors(group: Group, analyse: Analyse) -> Anchors:
    parts = [anchors(item, analyse) for item in group.items]
    kept = [part for part in parts if part is not DROPPED]
    if not kept:
        return DROPPED
    if all(op == "and" for op in group.ops):
        clauses = tuple(c for part in kept if isinstance(part, tuple) for c in part)
        return clauses or ANY
    # OR, or AND and OR mixed (read left to right by the engine): a match needs at least
    # one positive operand to match whatever the grouping, so the union of each operand's
    # narrowest clause is sound, unless some operand can match by itself without any
    # token (a negation, ``pre*``).
    if any(not isinstance(part, tuple) for part in kept):
        return ANY
    return (frozenset().union(*(_best(part) for part in kept if isinstance(part, tuple))),)


def query_anchors(query: str, filters: Sequence[str], analyse: Analyse) -> Anchors:
    """The anchors of a standing query: one clause per facet filter (its exact value) and
    its text's clauses. A query with neither matches every article."""
    clauses = tuple(frozenset({filter_token(*parse_filter(f))}) for f in filters)
    found = anchors(parse_query(query), analyse)
    if isinstance(found, tuple):
        clauses += found
    return clauses or ANY


@dataclass
class CandidateIndex:
    """Each query indexed under the tokens of its narrowest clause; its other clauses are
    checked against the article's tokens before it is called a candidate (a query of two
    rare words is a candidate only for articles that hold both)."""

    by_token: dict[str, set[str]]
    always: set[str]
    anchored: dict[str, Anchors]
    rest: dict[str, Clauses]

    @classmethod
    def empty(cls) -> CandidateIndex:
        return cls({}, set(), {}, {})

    def add(self, name: str, found: Anchors) -> None:
        """Index ``name`` under ``found`` (replacing what it had)."""
        self.remove(name)
        self.anchored[name] = found
        if isinstance(found, tuple):
            key = _best(found)
            self.rest[name] = tuple(c for c in found if c is not key)
            for token in key:
                self.by_token.setdefault(token, set()).add(name)
        else:
            self.always.add(name)

    def remove(self, name: str) -> None:
        old = self.anchored.pop(name, None)
        self.rest.pop(name, None)
        if isinstance(old, tuple):
            for token in _best(old):
                names = self.by_token.get(token)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self.by_token[token]
        self.always.discard(name)

    def candidates(self, tokens: set[str] | frozenset[str]) -> set[str]:
        """The queries an article with ``tokens`` may match."""
        found = set(self.always)
        for token in tokens:
            for name in self.by_token.get(token, ()):
                if name not in found and all(not c.isdisjoint(tokens) for c in self.rest[name]):
                    found.add(name)
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

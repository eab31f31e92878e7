"""Standing queries matched against just-indexed articles, by the search engine itself.

The local Elasticsearch build has no percolator module, so matching is done the other way
round, with the same result: after the sink's bulk is acknowledged (and the articles are
searchable), the presearcher (:mod:`pipeline.alerts.presearch`) picks the candidate
queries from the articles' analysed terms (term vectors: the index's own analysis), then
one search over the batch's ids holds every candidate as a named ``bool`` clause, built by
:func:`pipeline.search.query.query_clause`, the very clause ``newswire search`` sends. The
engine reports which named clauses each article matched: a standing query matches exactly
what the search would return, by construction; the presearcher only saves work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from pipeline.alerts.model import Alert, article_facets
from pipeline.alerts.presearch import (
    Anchors,
    CandidateIndex,
    anchors,
    article_tokens,
    filter_token,
    query_anchors,
)
from pipeline.search.query import parse_filter, query_clause
from pipeline.search.syntax import Group, Node, Not, Phrase, Term, parse_query
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)

TEXT_FIELDS = ("title", "summary", "body")
#: Named clauses per verification search (each is a simple_query_string over three fields;
#: the engine's clause limit is in the thousands).
CHUNK = 200
#: Concurrent ``_analyze`` requests while queries are compiled.
ANALYZE_CONCURRENCY = 8


def query_texts(node: Node) -> list[str]:
    """The words and phrases of a query the engine analyses (not prefixes, not fuzzy)."""
    if isinstance(node, Term):
        return [] if node.prefix or node.fuzzy else [node.text]
    if isinstance(node, Phrase):
        return [node.text]
    if isinstance(node, Not):
        return []  # a negated operand never explains a match
    assert isinstance(node, Group)
    return [text for item in node.items for text in query_texts(item)]


@dataclass(frozen=True)
class Match:
    """One standing query matched by one article, with the query's terms found in it."""

    alert: Alert
    document: Mapping[str, Any]
    terms: tuple[str, ...]


@dataclass
class MatchStats:
    """What the last :meth:`Matcher.match` did (for logs and the benchmark)."""

    articles: int = 0
    candidates: int = 0
    searches: int = 0
    matches: int = 0


class Matcher:
    """The standing queries of this worker, indexed for presearch, and their matching."""

    def __init__(self, backend: SearchBackend, alias: str, *, chunk: int = CHUNK) -> None:
        self.backend = backend
        self.alias = alias
        self.chunk = chunk
        self.alerts: dict[str, Alert] = {}
        self.index = CandidateIndex.empty()
        self.positive: dict[str, frozenset[str]] = {}
        self._analysed: dict[str, tuple[str, ...]] = {}
        self.last = MatchStats()

    async def analyse(self, texts: Sequence[str]) -> None:
        """Analyse (``_analyze``, the index's ``body`` analysis) the texts not seen yet."""
        missing = sorted({t for t in texts if t not in self._analysed})
        if not missing:
            return
        limit = asyncio.Semaphore(ANALYZE_CONCURRENCY)

        async def one(text: str) -> None:
            async with limit:
                answer = await self.backend.analyze(self.alias, {"field": "body", "text": text})
            self._analysed[text] = tuple(t["token"] for t in answer.get("tokens", []))

        await asyncio.gather(*(one(text) for text in missing))

    def tokens_of(self, text: str) -> Sequence[str]:
        return self._analysed[text]

    async def put(self, alert: Alert) -> Anchors:
        """Add or replace a standing query; returns its anchors."""
        await self.put_many([alert])
        return self.index.anchored[alert.name]

    async def put_many(self, alerts: Sequence[Alert]) -> None:
        """Add or replace standing queries (their words analysed in one go)."""
        trees = {a.name: parse_query(a.query) for a in alerts}
        await self.analyse([t for tree in trees.values() for t in query_texts(tree)])
        for alert in alerts:
            tree = trees[alert.name]
            self.alerts[alert.name] = alert
            self.index.add(alert.name, query_anchors(alert.query, alert.filters, self.tokens_of))
            words = {tok for text in query_texts(tree) for tok in self.tokens_of(text)}
            self.positive[alert.name] = frozenset(words)

    def remove(self, name: str) -> None:
        self.alerts.pop(name, None)
        self.positive.pop(name, None)
        self.index.remove(name)

    def text_anchors(self, alert: Alert) -> Anchors:
        """The anchors of the query text alone (for tests and ``alerts show``)."""
        return anchors(parse_query(alert.query), self.tokens_of)

    async def article_terms(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """The analysed terms of title, summary and body of each article (term vectors,
        computed by the engine from the indexed document: the index's own analysis)."""
        if not ids:
            return {}
        body = {
            "ids": list(ids),
            "parameters": {
                "fields": list(TEXT_FIELDS),
                "positions": False,
                "offsets": False,
                "payloads": False,
                "term_statistics": False,
                "field_statistics": False,
            },
        }
        answer = await self.backend.mtermvectors(self.alias, body)
        terms: dict[str, set[str]] = {}
        for doc in answer.get("docs", []):
            found = terms.setdefault(str(doc.get("_id")), set())
            for vector in (doc.get("term_vectors") or {}).values():
                found.update(vector.get("terms", {}))
        return terms

    async def match(self, documents: Sequence[Mapping[str, Any]]) -> list[Match]:
        """The standing queries each of ``documents`` (index documents, already searchable)
        matches; one :class:`Match` per (query, article)."""
        stats = self.last = MatchStats(articles=len(documents))
        if not self.alerts or not documents:
            return []
        by_id = {str(d["id"]): d for d in documents}
        terms = await self.article_terms(list(by_id))
        tokens: dict[str, set[str]] = {}
        candidates: set[str] = set()
        for doc_id, doc in by_id.items():
            tokens[doc_id] = article_tokens(terms.get(doc_id, set()), article_facets(doc))
            candidates |= self.index.candidates(tokens[doc_id])
        stats.candidates = len(candidates)
        names = sorted(candidates)
        chunks = [names[i : i + self.chunk] for i in range(0, len(names), self.chunk)]
        answers = await asyncio.gather(*(self._verify(chunk, list(by_id)) for chunk in chunks))
        stats.searches = len(chunks)
        matches: list[Match] = []
        for hits in answers:
            for doc_id, matched in hits:
                doc_tokens = tokens.get(doc_id, set())
                for name in matched:
                    alert = self.alerts.get(name)
                    if alert is None:
                        continue
                    found = tuple(sorted(self.positive.get(name, frozenset()) & doc_tokens))
                    matches.append(Match(alert, by_id[doc_id], found))
        stats.matches = len(matches)
        return matches

    async def _verify(self, names: Sequence[str], ids: list[str]) -> list[tuple[str, list[str]]]:
        should = []
        for name in names:
            alert = self.alerts[name]
            clause = query_clause(alert.query, alert.filters)
            should.append({"bool": {**clause["bool"], "_name": name}})
        body = {
            "query": {
                "bool": {
                    "filter": [{"ids": {"values": ids}}],
                    "should": should,
                    "minimum_should_match": 1,
                }
            },
            "size": len(ids),
            "_source": False,
        }
        answer = await self.backend.search(self.alias, body)
        out = []
        for hit in answer.get("hits", {}).get("hits", []):
            matched = hit.get("matched_queries") or []
            if isinstance(matched, dict):  # include_named_queries_score form
                matched = list(matched)
            out.append((str(hit["_id"]), [str(m) for m in matched]))
        return out


def filter_values(alert: Alert) -> dict[str, str]:
    """The alert's filters as ``{field: value}``."""
    return dict(parse_filter(f) for f in alert.filters)


__all__ = ["Match", "MatchStats", "Matcher", "filter_token", "filter_values", "query_texts"]

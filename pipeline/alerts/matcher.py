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
import time
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
from pipeline.errors import RetryableError, SearchBackendError
from pipeline.search.query import parse_filter, query_clause
from pipeline.search.syntax import Group, Node, Not, Phrase, Term, parse_query
from pipeline.sinks.backend import SearchBackend

log = structlog.get_logger(__name__)

TEXT_FIELDS = ("title", "summary", "body")
#: Named clauses per verification search (each is a simple_query_string over three fields;
#: the engine's clause limit is in the thousands).
CHUNK = 200
#: Query texts analysed per request, and requests at once, while queries are compiled.
ANALYZE_BATCH = 500
#: Term vectors: the terms only.
TV_PARAMETERS = {
    "positions": False, "offsets": False, "payloads": False,
    "term_statistics": False, "field_statistics": False,
}  # fmt: skip
ANALYZE_CONCURRENCY = 2


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
    terms_seconds: float = 0.0
    presearch_seconds: float = 0.0
    verify_seconds: float = 0.0


class Matcher:
    """The standing queries of this worker, indexed for presearch, and their matching."""

    def __init__(self, backend: SearchBackend, alias: str, *, chunk: int = CHUNK) -> None:
        self.backend = backend
        self.alias = alias
        self.chunk = chunk
        self.alerts: dict[str, Alert] = {}
        self.index = CandidateIndex.empty()
        self.positive: dict[str, frozenset[str]] = {}
        #: Each query's named clause, built once by query_clause (search's own).
        self.clauses: dict[str, dict[str, Any]] = {}
        self._analysed: dict[str, tuple[str, ...]] = {}
        self._index_name: str | None = None
        self.last = MatchStats()

    async def analyse(self, texts: Sequence[str]) -> None:
        """Analyse the texts not seen yet with the index's ``body`` analysis: term vectors
        of artificial documents, many texts per request (10,000 queries load in a few
        requests instead of one ``_analyze`` per word)."""
        missing = sorted({t for t in texts if t not in self._analysed})
        if not missing:
            return
        limit = asyncio.Semaphore(ANALYZE_CONCURRENCY)
        index = await self.analysis_index()

        async def chunk(part: list[str]) -> None:
            body = {"docs": [{"doc": {"body": text}, "fields": ["body"], **TV_PARAMETERS}
                             for text in part]}  # fmt: skip
            async with limit:
                answer = await self.backend.mtermvectors(index, body)
            docs = answer.get("docs", [])
            if len(docs) != len(part):
                raise SearchBackendError(f"analysed {len(docs)} of {len(part)} query texts")
            for text, doc in zip(part, docs, strict=True):
                vector = (doc.get("term_vectors") or {}).get("body", {})
                self._analysed[text] = tuple(sorted(vector.get("terms", {})))

        parts = [missing[i : i + ANALYZE_BATCH] for i in range(0, len(missing), ANALYZE_BATCH)]
        await asyncio.gather(*(chunk(part) for part in parts))

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
            clause = query_clause(alert.query, alert.filters)
            self.clauses[alert.name] = {"bool": {**clause["bool"], "_name": alert.name}}

    def remove(self, name: str) -> None:
        self.alerts.pop(name, None)
        self.positive.pop(name, None)
        self.clauses.pop(name, None)
        self.index.remove(name)

    def text_anchors(self, alert: Alert) -> Anchors:
        """The anchors of the query text alone (for tests and ``alerts show``)."""
        return anchors(parse_query(alert.query), self.tokens_of)

    async def analysis_index(self) -> str:
        """The index whose analysis is used: the alias's write index (term vectors of
        artificial documents need one index, and an alias may hold several)."""
        if self._index_name is None:
            self._index_name = await self.backend.write_index(self.alias)
        return self._index_name

    async def article_terms(self, documents: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
        """The analysed terms of title, summary and body of each article: term vectors of
        the documents' text, computed by the engine with the index's analysis."""
        if not documents:
            return {}
        docs = [
            {
                "doc": {f: document.get(f) or "" for f in TEXT_FIELDS},
                "fields": list(TEXT_FIELDS),
                **TV_PARAMETERS,
            }
            for document in documents
        ]
        answer = await self.backend.mtermvectors(await self.analysis_index(), {"docs": docs})
        found_docs = answer.get("docs", [])
        if len(found_docs) != len(documents):
            raise SearchBackendError(f"term vectors for {len(found_docs)} of {len(documents)}")
        terms: dict[str, set[str]] = {}
        for document, doc in zip(documents, found_docs, strict=True):
            found = terms.setdefault(str(document["id"]), set())
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
        started = time.perf_counter()
        terms = await self.article_terms(list(by_id.values()))
        stats.terms_seconds = time.perf_counter() - started
        started = time.perf_counter()
        tokens: dict[str, set[str]] = {}
        nominated: dict[str, list[str]] = {}
        for doc_id, doc in by_id.items():
            tokens[doc_id] = article_tokens(terms.get(doc_id, set()), article_facets(doc))
            nominated[doc_id] = sorted(self.index.candidates(tokens[doc_id]))
        stats.candidates = sum(len(names) for names in nominated.values())
        stats.presearch_seconds = time.perf_counter() - started
        started = time.perf_counter()
        # One search per article and chunk of its candidates, all in one msearch: the
        # engine checks each named clause against that article only.
        bodies: list[dict[str, Any]] = []
        asked: list[str] = []
        for doc_id, names in nominated.items():
            for i in range(0, len(names), self.chunk):
                bodies.append(self._verify_body(names[i : i + self.chunk], [doc_id]))
                asked.append(doc_id)
        answers = await self.backend.msearch(self.alias, bodies) if bodies else []
        stats.searches = len(bodies)
        stats.verify_seconds = time.perf_counter() - started
        matches: list[Match] = []
        for doc_id, answer in zip(asked, answers, strict=True):
            if "error" in answer:
                raise _answer_error(answer)
            for hit in answer.get("hits", {}).get("hits", []):
                matched = hit.get("matched_queries") or []
                doc_tokens = tokens.get(doc_id, set())
                for name in matched:
                    alert = self.alerts.get(str(name))
                    if alert is None:
                        continue
                    found = tuple(sorted(self.positive.get(alert.name, frozenset()) & doc_tokens))
                    matches.append(Match(alert, by_id[doc_id], found))
        stats.matches = len(matches)
        return matches

    def _verify_body(self, names: Sequence[str], ids: list[str]) -> dict[str, Any]:
        """A search over ``ids`` holding each query of ``names`` as a named clause, built
        by :func:`query_clause` (what ``newswire search`` sends)."""
        should = [self.clauses[name] for name in names]
        return {
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


def _answer_error(answer: Mapping[str, Any]) -> SearchBackendError:
    """An msearch item's error as Newswire's (retryable for 429 and 5xx)."""
    status = int(answer.get("status", 500))
    reason = str(answer.get("error"))[:500]
    if status == 429 or status >= 500:
        return RetryableError(f"alert matching search {status}: {reason}")
    return SearchBackendError(f"alert matching search {status}: {reason}")


def filter_values(alert: Alert) -> dict[str, str]:
    """The alert's filters as ``{field: value}``."""
    return dict(parse_filter(f) for f in alert.filters)


__all__ = ["Match", "MatchStats", "Matcher", "filter_token", "filter_values", "query_texts"]

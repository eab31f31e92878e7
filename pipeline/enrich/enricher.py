"""The enrichment of a micro-batch of raw articles (synchronous CPU work)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from pipeline.enrich.canonical import AliasTable, load_alias_table
from pipeline.enrich.entities import (
    FIELD_NAMES,
    RawMention,
    canonicalize,
    clean_spans,
    place_mentions,
)
from pipeline.enrich.keywords import extract_keywords
from pipeline.enrich.language import LanguageResult, detect_language
from pipeline.enrich.nlp import NER_LANGUAGES
from pipeline.enrich.recogniser import Recogniser, make_recogniser
from pipeline.enrich.topics import THRESHOLD, TopicLexicon, load_lexicon, score_topics
from pipeline.enrich.version import enrichment_version, recogniser_identity
from pipeline.enrich.words import words
from pipeline.models import NO_RECOGNISER, Enrichment, RawArticle

log = structlog.get_logger(__name__)

TOPIC_LANGUAGES = frozenset({"en"})  # the keyword profiles are English
LANGUAGE_SAMPLE_CHARS = 1500


@dataclass
class _Work:
    fields: dict[str, str]
    language: LanguageResult
    run_ner: bool
    mentions: list[RawMention] = field(default_factory=list)


def count_words(text: str) -> int:
    """Words as a reader counts them ("al-Assad" and "don't" are one)."""
    return len(words(text))


class Enricher:
    """Language, canonical entities, IPTC topics, keywords and word count for articles.

    The recogniser (``NEWSWIRE_NER_BACKEND``: a CoreNLP server, or spaCy in-process) is
    set up on the first batch that needs NER; each result names it (``recogniser``,
    ``recogniser_model``), or "none" when no NER ran for that article.
    """

    def __init__(
        self,
        *,
        recogniser: Recogniser | None = None,
        aliases: AliasTable | None = None,
        lexicon: TopicLexicon | None = None,
        topic_threshold: float = THRESHOLD,
        max_chars: int | None = 200_000,
        batch_size: int = 32,
    ) -> None:
        self.aliases = aliases if aliases is not None else load_alias_table()
        self.lexicon = lexicon if lexicon is not None else load_lexicon()
        self.topic_threshold = topic_threshold
        self.max_chars = max_chars
        self.batch_size = batch_size
        self._recogniser = recogniser
        self._version: str | None = None

    @property
    def recogniser(self) -> Recogniser:
        """The entity recogniser, created on first use from the settings."""
        if self._recogniser is None:
            from pipeline.settings import get_settings

            self._recogniser = make_recogniser(get_settings())
            log.info("ner.recogniser", backend=self._recogniser.name)
        return self._recogniser

    @property
    def version(self) -> str:
        """The enrichment version of what this enricher produces (:mod:`.version`)."""
        if self._version is None:
            self._version = enrichment_version(*recogniser_identity(self.recogniser))
        return self._version

    def enrich(self, articles: Sequence[RawArticle]) -> list[Enrichment]:
        """Enrich a micro-batch; one :class:`Enrichment` per article, same order."""
        started = time.perf_counter()
        work = [self._prepare(a) for a in articles]
        jobs = [
            (i, name, w.fields[name])
            for i, w in enumerate(work)
            if w.run_ner
            for name in FIELD_NAMES
            if name in w.fields
        ]
        who = (NO_RECOGNISER, "")
        if jobs:
            all_spans = self.recogniser.spans([text for _, _, text in jobs])
            for (i, name, text), spans in zip(jobs, all_spans, strict=True):
                work[i].mentions.extend(place_mentions(text, name, clean_spans(text, spans, name)))
            who = (self.recogniser.name, self.recogniser.model)
        results = [self._finish(w, who if w.run_ner else (NO_RECOGNISER, "")) for w in work]
        log.debug(
            "enrich.batch",
            articles=len(articles),
            ner_fields=len(jobs),
            seconds=round(time.perf_counter() - started, 4),
        )
        return results

    def _prepare(self, article: RawArticle) -> _Work:
        fields: dict[str, str] = {}
        for name, value in (
            ("title", article.title),
            ("summary", article.summary),
            ("body", article.body),
        ):
            if value and value.strip():
                fields[name] = value[: self.max_chars] if self.max_chars else value
        sample = "\n".join(fields.values())[:LANGUAGE_SAMPLE_CHARS]
        language = detect_language(sample, article.language_hint)
        run_ner = bool(fields) and (
            language.code in NER_LANGUAGES
            or (not language.reliable and (language.code is None or _mostly_latin(sample)))
        )
        return _Work(fields=fields, language=language, run_ner=run_ner)

    def _finish(self, work: _Work, recogniser: tuple[str, str]) -> Enrichment:
        result = canonicalize(work.mentions, self.aliases)
        topics = (
            score_topics(
                work.fields,
                self.lexicon,
                threshold=self.topic_threshold,
                mentions=result.mentions,
            )
            if work.language.code in TOPIC_LANGUAGES or work.run_ner
            else []
        )
        body = work.fields.get("body")
        word_count = (
            count_words(body) if body else sum(count_words(t) for t in work.fields.values())
        )
        return Enrichment(
            language=work.language.code,
            entities=result.entities,
            mentions=result.mentions,
            topics=topics,
            keywords=extract_keywords(work.fields, result.mentions),
            word_count=word_count,
            recogniser=recogniser[0],
            recogniser_model=recogniser[1],
        )


def _mostly_latin(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) / len(letters) >= 0.9

"""The entity recogniser behind the enricher: CoreNLP over HTTP (default) or spaCy in-process.

Both give :class:`~pipeline.enrich.entities.Span` lists (label + character offsets) per
text; everything after that (cleaning, canonical names) is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from pipeline.enrich.entities import Span
from pipeline.settings import Settings

log = structlog.get_logger(__name__)


class Recogniser(Protocol):
    """Entity spans for a batch of texts, one list per text, same order."""

    name: str

    def spans(self, texts: Sequence[str]) -> list[list[Span]]: ...


def corenlp_url(settings: Settings) -> str:
    """``NEWSWIRE_CORENLP_URL`` (one URL or a comma-separated list), or the local stack's
    CoreNLP server."""
    return settings.corenlp_url or f"http://127.0.0.1:{settings.corenlp_port}/"


def make_recogniser(settings: Settings, *, fallback_to_spacy: bool = False) -> Recogniser:
    """The recogniser ``NEWSWIRE_NER_BACKEND`` names.

    With ``fallback_to_spacy`` (``newswire enrich`` without servers), no local CoreNLP
    server gives the in-process spaCy recogniser and a warning. A server named by
    ``NEWSWIRE_CORENLP_URL`` is never replaced (its outage is an error), and the worker
    never falls back: it waits for CoreNLP so that every article gets the same recogniser.
    """
    if settings.ner_backend == "spacy":
        from pipeline.enrich.nlp import SpacyRecogniser

        return SpacyRecogniser()
    from pipeline.enrich.corenlp import CoreNLPRecogniser

    recogniser = CoreNLPRecogniser(
        corenlp_url(settings),
        timeout=settings.corenlp_timeout,
        resolve_seconds=settings.corenlp_resolve_seconds,
    )
    if fallback_to_spacy and not settings.corenlp_url and not recogniser.available():
        from pipeline.enrich.nlp import SpacyRecogniser

        log.warning(
            "ner.fallback_to_spacy",
            reason=f"no CoreNLP server answers at {recogniser.url}",
            hint="start it with `newswire stack up` or set NEWSWIRE_CORENLP_URL; "
            "NEWSWIRE_NER_BACKEND=spacy silences this",
        )
        return SpacyRecogniser()
    return recogniser

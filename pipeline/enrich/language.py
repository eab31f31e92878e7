"""Language detection with lingua (its models ship inside the wheel: no downloads).

Low-accuracy mode (trigram models only) keeps the detector at ~60 MB for all 75
languages while staying accurate on article-length text; very short or ambiguous text
falls back to the feed's declared language.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import structlog

from pipeline.errors import MissingDependencyError

log = structlog.get_logger(__name__)

INSTALL_HINT = "pip install 'newswire[nlp]' (or pip install lingua-language-detector)"
SAMPLE_CHARS = 2000  # the head of the text is enough, and bounds the cost
MIN_LETTERS = 25  # below this the detector is a guess
MIN_CONFIDENCE = 0.5
SHORT_TEXT_LETTERS = 200  # headlines, captions, result lines: demand more confidence
SHORT_TEXT_CONFIDENCE = 0.85
# Languages with hardly any news feeds whose trigram profiles attract lists of names and
# numbers ("LONDON 1996-08-30" is not Indonesian); the detector never answers with them.
EXCLUDED_LANGUAGES = (
    "LATIN", "TSWANA", "SHONA", "SOTHO", "TSONGA", "YORUBA", "XHOSA", "ZULU", "MAORI",
    "GANDA", "ESPERANTO",
)  # fmt: skip

_lock = threading.Lock()
_detector: Any = None


@dataclass(frozen=True, slots=True)
class LanguageResult:
    """ISO 639-1 code (or None), the detector's confidence and whether to trust it."""

    code: str | None
    confidence: float
    reliable: bool


def get_detector() -> Any:
    """The shared lingua detector (built once, lazily)."""
    global _detector
    if _detector is not None:
        return _detector
    with _lock:
        if _detector is None:
            try:
                from lingua import Language, LanguageDetectorBuilder
            except ImportError as exc:
                raise MissingDependencyError("lingua-language-detector", INSTALL_HINT) from exc
            excluded = [getattr(Language, n) for n in EXCLUDED_LANGUAGES if hasattr(Language, n)]
            _detector = (
                LanguageDetectorBuilder.from_all_languages_without(*excluded)
                .with_low_accuracy_mode()
                .with_preloaded_language_models()
                .build()
            )
            log.info("lingua.loaded", mode="low-accuracy", languages="all")
    return _detector


def normalize_hint(hint: str | None) -> str | None:
    """``"en-US"`` / ``"EN_gb"`` / ``"eng"``-ish feed values -> ``"en"``; junk -> None."""
    if not hint:
        return None
    code = hint.strip().replace("_", "-").split("-")[0].casefold()
    return code if len(code) == 2 and code.isalpha() else None


def evidence_text(text: str) -> str:
    """The words that say which language a text is in: not names, not numbers.

    Capitalised words are mostly names, which travel between languages unchanged (a list
    of athletes and countries is not Dutch); words of caseless scripts are kept. ALL-CAPS
    text is read lower-cased.
    """
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(ch.isupper() for ch in letters) / len(letters) > 0.6:
        return text.lower()
    return " ".join(w for w in text.split() if w[:1].isalpha() and not w[:1].isupper())


def _ranked(sample: str) -> list[tuple[str, float]]:
    values = get_detector().compute_language_confidence_values(sample)
    return [(v.language.iso_code_639_1.name.lower(), float(v.value)) for v in values]


def _needed(letters: int) -> float:
    return SHORT_TEXT_CONFIDENCE if letters < SHORT_TEXT_LETTERS else MIN_CONFIDENCE


def detect_language(text: str, hint: str | None = None) -> LanguageResult:
    """Detect the language of ``text``; fall back to ``hint`` when the text cannot tell.

    The lower-case words decide first (names travel between languages). When they are too
    few to be sure, the whole text decides if it is sure and its language was the words'
    own first or second choice: "met in on to discuss the war" alone looks Dutch, the
    sentence with its names is plainly English, and a list of names still cannot make a
    text Dutch that its words do not point to."""
    hint_code = normalize_hint(hint)
    sample = text[:SAMPLE_CHARS]
    if not any(ch.isalpha() for ch in sample):
        return LanguageResult(hint_code, 0.0, False)
    evidence = evidence_text(sample)
    letters = sum(ch.isalpha() for ch in evidence)
    ranked = _ranked(evidence if letters >= MIN_LETTERS else sample)
    if not ranked:
        return LanguageResult(hint_code, 0.0, False)
    code, confidence = ranked[0]
    reliable = letters >= MIN_LETTERS and confidence >= _needed(letters)
    if not reliable and letters >= MIN_LETTERS:
        whole = _ranked(sample)
        all_letters = sum(ch.isalpha() for ch in sample)
        candidates = {c for c, _ in ranked[:2]}
        if whole and whole[0][0] in candidates and whole[0][1] >= _needed(all_letters):
            return LanguageResult(whole[0][0], whole[0][1], True)
    if not reliable and hint_code:
        return LanguageResult(hint_code, confidence, False)
    return LanguageResult(code, confidence, reliable)

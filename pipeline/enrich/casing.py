"""Re-casing of ALL-CAPS text for NER, without moving any character offset.

The small English model reads capitalisation as the strongest sign of a name, so an
all-caps headline ("LEICESTERSHIRE TAKE OVER AT TOP AFTER INNINGS VICTORY") looks like
one long name. Shouting lines are shown to the model in a guessed natural case instead:
function words and common verbs, adjectives and adverbs in lower case (the word lists of
the model's own lemmatizer tables), known abbreviations from the alias table as they are
("US", "NATO"), everything else capitalised. Wire-style datelines ("MOSCOW, Dec 15 -")
are capitalised the same way. Every replacement keeps the length, so offsets found on the
re-cased text are valid on the original.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import structlog

from pipeline.enrich.canonical import load_alias_table

log = structlog.get_logger(__name__)

SHOUT_RATIO = 0.6  # share of upper-case letters that makes a line "shouting"
MIN_SHOUT_LETTERS = 4
MAX_ACRONYM = 5  # known abbreviations up to this length keep their capitals
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_LINE_RE = re.compile(r"[^\n]+")
_DATELINE_RE = re.compile(
    r"^(\s*)([A-Z][A-Z.'’-]{2,}(?:\s+[A-Z][A-Z.'’-]+){0,3})(?=\s*(?:,|\(|\s-\s|\s\d{4}-\d\d))"
)


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Lower-case English function words and common verbs, adjectives and adverbs."""
    words: set[str] = set()
    try:
        from spacy.lang.en.stop_words import STOP_WORDS

        words.update(STOP_WORDS)
        from spacy.lookups import Lookups

        from pipeline.enrich.nlp import MODEL_PACKAGE

        root = resources.files(MODEL_PACKAGE)
        for entry in root.iterdir():
            path = entry.joinpath("lemmatizer", "lookups")
            if path.joinpath("lookups.bin").is_file():
                table = Lookups().from_disk(str(path)).get_table("lemma_index")
                for pos in ("verb", "adj", "adv"):
                    words.update(w for w in table.get(pos, []) if "_" not in w)
                break
    except (ImportError, ModuleNotFoundError, OSError, KeyError, ValueError) as exc:
        log.warning("casing.no_word_lists", error=str(exc))
    return frozenset(words)


def is_shouting(line: str) -> bool:
    """Mostly upper-case letters (and enough of them to judge)."""
    upper = lower = 0
    for ch in line:
        if ch.isupper():
            upper += 1
        elif ch.islower():
            lower += 1
    total = upper + lower
    return total >= MIN_SHOUT_LETTERS and upper / total > SHOUT_RATIO


def _recase_word(word: str, common: frozenset[str]) -> str:
    if len(word) < 2 or not word.isupper():
        return word
    low = word.lower()
    if len(word) <= MAX_ACRONYM and load_alias_table().lookup(word) is not None:
        new = word
    elif low in common:
        new = low
    else:
        new = word[0] + word[1:].lower()
    return new if len(new) == len(word) else word


def recase_line(line: str) -> str:
    """One shouting line in a guessed natural case (same length)."""
    common = common_words()
    out: list[str] = []
    pos = 0
    for m in _WORD_RE.finditer(line):
        out.append(line[pos : m.start()])
        out.append(_recase_word(m.group(0), common))
        pos = m.end()
    out.append(line[pos:])
    return "".join(out)


def _recase_dateline(line: str) -> str:
    m = _DATELINE_RE.match(line)
    if not m:
        return line
    place = m.group(2)
    fixed = re.sub(r"[^\W\d_]+", lambda w: w.group(0)[0] + w.group(0)[1:].lower(), place)
    if len(fixed) != len(place) or load_alias_table().lookup(place) is not None:
        return line
    return line[: m.start(2)] + fixed + line[m.end(2) :]


def recase_if_shouting(text: str) -> str:
    """``text`` with shouting lines and datelines re-cased; identical length."""
    if not any(ch.isupper() for ch in text):
        return text
    parts: list[str] = []
    pos = 0
    changed = False
    for m in _LINE_RE.finditer(text):
        line = m.group(0)
        new = recase_line(line) if is_shouting(line) else _recase_dateline(line)
        if new != line:
            changed = True
        parts.append(text[pos : m.start()])
        parts.append(new)
        pos = m.end()
    if not changed:
        return text
    parts.append(text[pos:])
    result = "".join(parts)
    return result if len(result) == len(text) else text

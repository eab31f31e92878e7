"""Words and stop words: the one tokenising rule and the one stop list of the enrichment
stage (word counts, keywords, topic terms and duplicate fingerprints all use them)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"

#: A word: letters and digits, joined by inner hyphens or apostrophes ("long-term", "it's").
WORD_RE = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")

#: Frequent in any news text, so never a keyword nor evidence of sameness.
NEWS_STOP = frozenset(
    {
        "said", "says", "say", "told", "tell", "according", "also", "would", "could",
        "should", "might", "must", "may", "year", "years", "month", "months", "week",
        "weeks", "day", "days", "new",
    }
)  # fmt: skip


def words(text: str) -> list[str]:
    """The words of ``text`` in order, as written."""
    return WORD_RE.findall(text)


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """English stop words (spaCy's list, shipped in ``pipeline/data/stop_words_en.txt`` so
    results do not depend on whether spaCy is installed), lower-case, ’ folded to '."""
    lines = (DATA / "stop_words_en.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().replace("’", "'") for line in lines if line.strip() and line[0] != "#"
    )

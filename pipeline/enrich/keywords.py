"""Keywords: the article's main entities, then its most salient content words."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache

from pipeline.models import Mention

MAX_KEYWORDS = 10
MAX_ENTITY_KEYWORDS = 5
TITLE_BOOST = 3

_WORD_RE = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
# frequent in any news text, so never a keyword
_NEWS_STOP = frozenset(
    [
        "said",
        "says",
        "say",
        "told",
        "tell",
        "according",
        "also",
        "would",
        "could",
        "should",
        "might",
        "must",
        "may",
        "year",
        "years",
        "month",
        "months",
        "week",
        "weeks",
        "day",
        "days",
        "time",
        "times",
        "today",
        "yesterday",
        "tomorrow",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "people",
        "new",
        "last",
        "first",
        "second",
        "third",
        "next",
        "including",
        "added",
        "went",
        "got",
        "get",
        "gets",
        "make",
        "made",
        "making",
        "take",
        "taken",
        "took",
        "just",
        "like",
        "well",
        "still",
        "even",
        "much",
        "many",
        "more",
        "most",
        "less",
        "least",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "hundred",
        "thousand",
        "million",
        "billion",
        "per",
        "cent",
        "percent",
        "mr",
        "mrs",
        "ms",
        "dr",
        "way",
        "ways",
        "lot",
        "lots",
        "thing",
        "things",
        "part",
        "number",
        "end",
        "set",
        "week's",
        "year's",
        "there's",
        "it's",
        "that's",
        "don't",
        "can't",
        "won't",
        "think",
        "know",
        "want",
        "wanted",
        "going",
        "come",
        "came",
        "see",
        "seen",
        "look",
        "looking",
        "use",
        "used",
        "using",
        "need",
        "needs",
        "want",
        "really",
        "good",
        "bad",
        "big",
        "small",
        "high",
        "low",
        "long",
        "short",
        "old",
        "young",
        "early",
        "late",
        "left",
        "right",
        "back",
        "around",
        "however",
        "although",
        "though",
        "whether",
    ]
)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    try:
        from spacy.lang.en.stop_words import STOP_WORDS
    except ImportError:
        return _NEWS_STOP
    return frozenset(STOP_WORDS) | _NEWS_STOP


def extract_keywords(
    fields: Mapping[str, str],
    mentions: Sequence[Mention] = (),
    max_keywords: int = MAX_KEYWORDS,
) -> list[str]:
    """Up to ``max_keywords``: most-mentioned canonical entities, then frequent terms.

    A term must occur at least twice, or once in the headline, and is skipped when it is
    a stop word or part of an entity name already listed.
    """
    stop = _stopwords()
    entity_counts = Counter(m.canonical for m in mentions if m.type != "misc")
    keywords: list[str] = [name for name, _ in entity_counts.most_common(MAX_ENTITY_KEYWORDS)]
    covered = {w.casefold() for name in entity_counts for w in _WORD_RE.findall(name)}
    covered |= {m.text.casefold() for m in mentions}

    counts: Counter[str] = Counter()
    in_title: set[str] = set()
    for name, text in fields.items():
        boost = TITLE_BOOST if name == "title" else 1
        for word in _WORD_RE.findall(text):
            low = word.casefold().replace("’", "'")
            if len(low) < 3 or low in stop or low in covered:
                continue
            counts[low] += boost
            if name == "title":
                in_title.add(low)
    seen = {k.casefold() for k in keywords}
    for word, count in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])):
        if len(keywords) >= max_keywords:
            break
        if (count >= 2 or word in in_title) and word not in seen:
            keywords.append(word)
            seen.add(word)
    return keywords[:max_keywords]

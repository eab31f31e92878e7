"""Keywords: the article's main entities, then its most salient content words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from pipeline.enrich.words import NEWS_STOP, stop_words, words
from pipeline.models import Mention

MAX_KEYWORDS = 10
MAX_ENTITY_KEYWORDS = 5
TITLE_BOOST = 3


def _has_digit(word: str) -> bool:
    return any(ch.isdigit() for ch in word)


def extract_keywords(
    fields: Mapping[str, str],
    mentions: Sequence[Mention] = (),
    max_keywords: int = MAX_KEYWORDS,
) -> list[str]:
    """Up to ``max_keywords``: most-mentioned canonical entities, then frequent terms.

    A term must occur at least twice, or once in the headline, and is skipped when it is
    a stop word or part of an entity name already listed.
    """
    stop = stop_words() | NEWS_STOP
    entity_counts = Counter(m.canonical for m in mentions if m.type != "misc")
    keywords: list[str] = [name for name, _ in entity_counts.most_common(MAX_ENTITY_KEYWORDS)]
    covered = {w.casefold() for name in entity_counts for w in words(name)}
    covered |= {m.text.casefold() for m in mentions}

    counts: Counter[str] = Counter()
    in_title: set[str] = set()
    for name, text in fields.items():
        boost = TITLE_BOOST if name == "title" else 1
        for word in words(text):
            low = word.casefold().replace("’", "'")
            if len(low) < 3 or low in stop or low in covered or _has_digit(low):
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

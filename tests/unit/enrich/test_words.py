"""The one word rule and the one stop list of the enrichment stage."""

from __future__ import annotations

import pytest

from pipeline.enrich.words import NEWS_STOP, stop_words, words


def test_words_keep_inner_hyphens_and_apostrophes_and_drop_punctuation() -> None:
    assert words("Long-term talks: it's Kerry’s plan (2015), not_this!") == [
        "Long-term", "talks", "it's", "Kerry’s", "plan", "2015", "not", "this",
    ]  # fmt: skip


def test_stop_list_is_spacys_whether_or_not_spacy_is_installed() -> None:
    stop = stop_words()
    assert {"the", "and", "of", "'s", "one"} <= stop
    assert "kerry" not in stop and "said" not in stop  # news words are a separate list
    assert "said" in NEWS_STOP
    spacy_words = pytest.importorskip("spacy.lang.en.stop_words", reason="spaCy not installed")
    assert stop == {w.replace("’", "'") for w in spacy_words.STOP_WORDS}

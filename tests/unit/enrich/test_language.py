"""Language detection: lower-case words first, the whole text when they cannot tell."""

from __future__ import annotations

import pytest

from pipeline.enrich.language import detect_language

pytest.importorskip("lingua", reason="lingua-language-detector not installed")


def test_a_short_english_sentence_full_of_names_is_english() -> None:
    """Its few lower-case words alone look Dutch; with its names it is plainly English."""
    text = (
        "Kerry meets Lavrov\n\nUS Secretary of State John Kerry met Sergei Lavrov in Moscow "
        "on Tuesday to discuss the war in Syria."
    )
    result = detect_language(text)
    assert (result.code, result.reliable) == ("en", True)

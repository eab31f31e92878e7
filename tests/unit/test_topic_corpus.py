"""Term reliability learnt from unlabelled newswire (pure logic, no corpus needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.enrich.topic_corpus import K, learn, read_sentences, split_documents
from pipeline.enrich.topics import TopicLexicon


def test_documents_start_at_the_line_before_the_dateline(tmp_path: Path) -> None:
    conll = tmp_path / "train.iob2.txt"
    rows = [
        ["EU", "rejects", "call", "."], ["BRUSSELS", "1996-08-22"], ["The", "body", "."],
        ["More", "body", "."], ["Second", "headline", "."], ["PARIS", "1996-08-23"], ["Text", "."],
    ]  # fmt: skip
    conll.write_text(
        "\n\n".join("\n".join(f"{tok} NN O O" for tok in row) for row in rows) + "\n", "utf-8"
    )
    docs = split_documents(read_sentences(conll))
    assert docs == [
        {"title": "EU rejects call .", "body": "The body .\nMore body ."},
        {"title": "Second headline .", "body": "Text ."},
    ]


def test_a_term_found_under_other_topics_weighs_less() -> None:
    lex = TopicLexicon.from_mapping(
        {
            "topics": {
                "medtop:11000000": {"label": "politics", "w3": ["election", "minister"]},
                "medtop:04000000": {"label": "economy", "w3": ["market", "shares"]},
            }
        }
    )
    politics = {"title": "Election called", "body": "The minister called an election."}
    economy = {"title": "Markets up", "body": "Shares rose on the market, the minister said."}
    scale = learn([politics] * 3 + [economy] * 2, lex)["scale"]
    # "minister": 3 politics and 2 economy articles; the other terms stay with one topic
    assert scale == {"minister": {"medtop:11000000": pytest.approx((3 + K) / (5 + K), abs=1e-3)}}

"""Term reliability and known organisations learnt from unlabelled newswire (pure logic,
no corpus needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.enrich.topics import TopicLexicon
from workshop.builders.topic_corpus import Article, K, learn, read_sentences, split_documents

LEXICON = TopicLexicon.from_mapping(
    {
        "topics": {
            "medtop:11000000": {"label": "politics", "w3": ["election", "minister"]},
            "medtop:04000000": {"label": "economy", "w3": ["market", "shares"]},
        }
    }
)


def test_documents_start_at_the_line_before_the_dateline(tmp_path: Path) -> None:
    conll = tmp_path / "train.iob2.txt"
    rows = [
        [("EU", "B-ORG"), ("rejects", "O"), ("call", "O"), (".", "O")],
        [("BRUSSELS", "B-LOC"), ("1996-08-22", "O")],
        [("The", "O"), ("European", "B-ORG"), ("Commission", "I-ORG"), ("said", "O")],
        [("More", "O"), ("body", "O"), (".", "O")],
        [("Second", "O"), ("headline", "O"), (".", "O")],
        [("PARIS", "B-LOC"), ("1996-08-23", "O")],
        [("Text", "O"), (".", "O")],
    ]
    conll.write_text(
        "\n\n".join("\n".join(f"{tok} NN O {tag}" for tok, tag in row) for row in rows) + "\n",
        "utf-8",
    )
    docs = split_documents(read_sentences(conll))
    assert docs == [
        Article(
            "EU rejects call .",
            "The European Commission said\nMore body .",
            frozenset({"EU", "European Commission"}),
        ),
        Article("Second headline .", "Text ."),
    ]


def test_a_term_found_under_other_topics_weighs_less() -> None:
    politics = Article("Election called", "The minister called an election.")
    economy = Article("Markets up", "Shares rose on the market, the minister said.")
    scale = learn([politics] * 3 + [economy] * 2, LEXICON)["scale"]
    # "minister": 3 politics and 2 economy articles; the other terms stay with one topic
    assert scale == {"minister": {"medtop:11000000": pytest.approx((3 + K) / (5 + K), abs=1e-3)}}


def test_organisations_named_mostly_under_one_topic_are_learnt() -> None:
    docs = [
        Article("Election called", "The minister called an election.", frozenset({"Labour"})),
        Article("Vote", "The election is near, the minister said.", frozenset({"Labour", "Ford"})),
        Article("Markets up", "Shares rose on the market.", frozenset({"Ford"})),
        Article("Market", "Shares fell.", frozenset({"Ford", "Bundesbank"})),
    ]
    organizations = learn(docs, LEXICON)["organizations"]
    # Ford: 2 of 3 articles economy (below the 0.8 share); Bundesbank: one article only
    assert organizations == {"Labour": "medtop:11000000"}

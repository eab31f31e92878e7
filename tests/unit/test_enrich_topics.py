"""Topic lexicon matching, scores and explanations (no model needed)."""

from __future__ import annotations

from pipeline.enrich.topics import explain_topics, load_lexicon, score_topics, stem, tokenize


def test_all_seventeen_top_level_topics() -> None:
    labels = load_lexicon().labels
    assert len(labels) == 17
    assert labels["medtop:11000000"] == "politics"
    assert labels["medtop:16000000"] == "conflict, war and peace"
    assert all(code.startswith("medtop:") and code.endswith("000000") for code in labels)


def test_stem_and_tokenize() -> None:
    assert stem("elections") == "election"
    assert stem("policies") == "policy"
    assert stem("business") == "business"
    assert stem("minister's") == "minister"
    assert tokenize("Interest rates rose 2%") == ["interest", "rate", "rose", "2", "%"]


def test_sport_and_economy_ranked_first() -> None:
    sport = score_topics(
        {
            "title": "Arsenal beat Chelsea",
            "body": "The striker scored twice in the second half as Arsenal won the league match.",
        }
    )
    assert sport[0].code == "medtop:15000000"
    econ = score_topics(
        {
            "body": "The central bank raised interest rates as inflation hit 5%, "
            "and shares fell on the stock market."
        }
    )
    assert econ[0].code == "medtop:04000000"
    assert all(0.0 <= t.score <= 1.0 for t in econ)
    assert [t.score for t in econ] == sorted((t.score for t in econ), reverse=True)


def test_no_evidence_no_topic() -> None:
    assert score_topics({"body": "Lorem ipsum dolor sit amet."}) == []


def test_explanations_name_the_terms() -> None:
    why = explain_topics(
        {"title": "Ceasefire talks", "body": "Rebels and troops agreed a ceasefire."}
    )
    first = next(iter(why))
    assert first == "medtop:16000000"
    terms = dict(why[first])
    assert max(terms, key=lambda t: terms[t]) == "ceasefire talk"  # headline phrase, doubled
    assert terms["troop"] > 0

"""Topic lexicon matching, scores and explanations (no model needed)."""

from __future__ import annotations

import math

import pytest

from pipeline.enrich.topics import (
    MIN_EVIDENCE,
    REFERENCE_TOKENS,
    TopicEvidence,
    TopicLexicon,
    explain_topics,
    gather_evidence,
    load_lexicon,
    score_topics,
    scores_from_evidence,
    stem,
    tokenize,
)


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
    assert max(terms, key=lambda t: terms[t]) == "ceasefire talk"  # headline phrase
    assert terms["troop"] > 0


def test_organisations_are_topic_evidence() -> None:
    from pipeline.enrich.topics import entity_evidence
    from pipeline.models import Mention

    def org(name: str) -> Mention:
        return Mention(type="organization", text=name, canonical=name, field="body", start=0, end=1)

    evidence = entity_evidence([org("Manchester United"), org("Labour Party"), org("Vodafone")])
    assert [n for n, _ in evidence["medtop:15000000"]] == ["Manchester United"]
    assert [n for n, _ in evidence["medtop:11000000"]] == ["Labour Party"]
    assert [n for n, _ in evidence["medtop:04000000"]] == ["Vodafone"]  # a company, most likely
    assert score_topics({"title": "Glazer bid"}, mentions=[org("Manchester United")])[0].code == (
        "medtop:15000000"
    )
    # organisations learnt from newswire come first; a place the recogniser typed otherwise
    # is not looked up
    known = {"blackburn": "medtop:15000000", "united nations": "medtop:11000000"}
    learnt = entity_evidence([org("Blackburn"), org("United Nations")], known)
    assert learnt == {
        "medtop:15000000": [("Blackburn", 3.0)],
        "medtop:11000000": [("United Nations", 3.0)],
    }
    place = Mention(type="location", text="Blackburn", canonical="Blackburn", field="body",
                    start=0, end=1)  # fmt: skip
    assert entity_evidence([place], known) == {}


def test_iptc_derived_terms_carry_the_attribution() -> None:
    from importlib import resources

    text = resources.files("pipeline.data").joinpath("iptc_terms.yaml").read_text("utf-8")
    assert "IPTC Media Topic NewsCodes, CC BY 4.0" in text.splitlines()[0]
    lex = load_lexicon()
    assert "medtop:15000000" in [code for code, _ in lex.unigrams["decathlon"]]


def _tiny_lexicon(scale: dict[str, dict[str, float]] | None = None) -> TopicLexicon:
    return TopicLexicon.from_mapping(
        {
            "topics": {
                "medtop:11000000": {"label": "politics", "w3": ["election"]},
                "medtop:15000000": {"label": "sport", "w3": ["goal"]},
            },
            "scale": scale or {},
        }
    )


def test_snowball_stems_add_half_the_evidence_they_find() -> None:
    lex = _tiny_lexicon()
    assert gather_evidence({"body": "The elected council met."}, lex, blend=0.0).raw == {}
    evidence = gather_evidence({"body": "The elected council met."}, lex)
    assert evidence.raw == {"medtop:11000000": 1.5}  # w3 = 3.0, half of it
    assert evidence.terms["medtop:11000000"] == [("~elect", 1.5)]
    # a word the light fold already matches gets nothing on top
    assert gather_evidence({"body": "An election."}, lex).raw == {"medtop:11000000": 3.0}


def test_headline_term_counts_are_damped_apart_from_the_body() -> None:
    lex = _tiny_lexicon()
    evidence = gather_evidence({"title": "Goal", "body": "A goal, a goal and a goal."}, lex)
    expected = 3.0 * 1.0 + 3.0 * (1.0 + math.log(3))  # headline tf 1, body tf 3
    assert evidence.raw["medtop:15000000"] == pytest.approx(expected)
    assert [t for t, _ in evidence.terms["medtop:15000000"]] == ["goal"]


def test_reliability_factors_scale_a_terms_weight() -> None:
    lex = _tiny_lexicon({"goal": {"medtop:15000000": 0.5}})
    assert lex.unigrams["goal"] == [("medtop:15000000", 1.5)]
    assert lex.unigrams["election"] == [("medtop:11000000", 3.0)]
    assert lex.stemmed is not None and lex.stemmed.unigrams["goal"] == [("medtop:15000000", 1.5)]


def test_learnt_factors_are_packaged_with_their_source() -> None:
    from importlib import resources

    text = resources.files("pipeline.data").joinpath("topic_corpus.yaml").read_text("utf-8")
    first = text.splitlines()[0]
    assert "CoNLL-2003" in first and "research use" in first
    assert str(load_lexicon().version).endswith("+corpus")


def test_minimum_evidence_scales_with_length() -> None:
    """One weak term is a topic for a headline and a line, not for a whole article."""
    weak = {"15000000": 0.6}
    terms = {"15000000": [("match", 0.6)]}
    assert scores_from_evidence(TopicEvidence(raw=weak, terms=terms, n_tokens=20))
    assert not scores_from_evidence(TopicEvidence(raw=weak, terms=terms, n_tokens=REFERENCE_TOKENS))
    strong = {"15000000": MIN_EVIDENCE}
    assert scores_from_evidence(TopicEvidence(raw=strong, terms=terms, n_tokens=5000))


def test_strong_stem_is_safe_across_nlp_threads() -> None:
    """The worker enriches parts of a batch on several threads; Snowball stemmers keep
    their word in the object, so one shared stemmer mixed words up (IndexError)."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.enrich.topics import strong_stem

    roots = ("govern", "nation", "elect", "comput", "play")
    ends = ("ing", "ed", "ment", "ational", "ization", "fulness", "ously")
    words = [root + end for root in roots for end in ends]
    words = [w + "x" * k for k in range(40) for w in words]
    strong_stem.cache_clear()
    expected = {w: strong_stem(w) for w in words}

    def run(_: int) -> dict[str, str]:
        out = {}
        for w in words:
            strong_stem.cache_clear()
            out[w] = strong_stem(w)
        return out

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(run, range(4)))
    finally:
        sys.setswitchinterval(interval)
    assert all(result == expected for result in results)

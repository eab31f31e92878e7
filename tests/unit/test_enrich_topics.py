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


def test_iptc_derived_terms_carry_the_attribution() -> None:
    from importlib import resources

    text = resources.files("pipeline.data").joinpath("iptc_terms.yaml").read_text("utf-8")
    assert "IPTC Media Topic NewsCodes, CC BY 4.0" in text.splitlines()[0]
    lex = load_lexicon()
    assert "medtop:15000000" in [code for code, _ in lex.unigrams["decathlon"]]

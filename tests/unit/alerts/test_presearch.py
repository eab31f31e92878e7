"""The presearcher's anchors: sound (every match holds one) and narrow."""

from collections.abc import Sequence

import pytest

from pipeline.alerts.model import Alert, article_facets, idempotency_key, new_alert, parse_duration
from pipeline.alerts.presearch import (
    ANY,
    CandidateIndex,
    anchors,
    article_tokens,
    filter_token,
    query_anchors,
)
from pipeline.errors import ConfigError, QuerySyntaxError
from pipeline.search.syntax import parse_query

STOP = {"the", "a", "of"}


def analyse(text: str) -> Sequence[str]:
    """A stand-in analyser: lowercase, stop words out, a trailing 's' stemmed."""
    words = [w.lower() for w in text.replace("-", " ").split()]
    return [w[:-1] if w.endswith("s") else w for w in words if w not in STOP]


def anchored(query: str) -> object:
    return anchors(parse_query(query), analyse)


def f(*tokens: str) -> frozenset[str]:
    return frozenset(tokens)


def test_and_requires_every_operand_or_takes_the_union() -> None:
    assert anchored("Kerry talks") == (f("kerry"), f("talk"))
    assert anchored("kerry | lavrov") == (f("kerry", "lavrov"),)
    assert anchored("kerry -lavrov") == (f("kerry"),)
    assert anchored('"peace talks in Vienna"') == (f("in"), f("peace"), f("talk"), f("vienna"))
    assert anchored("(kerry | lavrov) moscow") == (f("kerry", "lavrov"), f("moscow"))
    assert anchored('kerry | "peace talks"') == (f("kerry", "peace"),)


def test_what_cannot_be_anchored_is_always_a_candidate() -> None:
    assert anchored("-kerry") is ANY
    assert anchored("kerry | -lavrov") is ANY
    assert anchored("sanction*") is ANY
    assert anchored("merkle~1") is ANY
    assert anchored("kerry sanction*") == (f("kerry"),)


def test_stop_words_are_left_out_like_the_engine_does() -> None:
    assert anchored("the kerry") == (f("kerry"),)
    assert query_anchors("the", [], analyse) is ANY


def test_filters_anchor_on_their_exact_value() -> None:
    found = query_anchors("talks", ["person=John Kerry"], analyse)
    assert found == (f(filter_token("entities.person", "John Kerry")), f("talk"))
    assert query_anchors("-talks", ["language=en"], analyse) == (f(filter_token("language", "en")),)


def test_candidate_index_adds_replaces_and_removes() -> None:
    index = CandidateIndex.empty()
    index.add("a", (f("kerry"),))
    index.add("b", ANY)
    index.add("c", (f("lavrov", "kerry"),))
    index.add("d", (f("kerry"), f("moscow")))  # both required
    assert index.candidates({"kerry"}) == {"a", "b", "c"}
    assert index.candidates({"kerry", "moscow"}) == {"a", "b", "c", "d"}
    assert index.candidates({"moscow"}) == {"b"}
    index.remove("d")
    index.add("c", (f("moscow"),))
    assert index.candidates({"lavrov"}) == {"b"}
    index.remove("b")
    index.remove("c")
    assert index.candidates({"moscow", "kerry"}) == {"a"} and len(index) == 1


def test_article_tokens_hold_terms_and_facet_values() -> None:
    doc = {"id": "x", "entities": {"person": ["John Kerry"]}, "topics": [{"label": "politics"}],
           "source": {"name": "BBC"}, "language": "en"}  # fmt: skip
    tokens = article_tokens({"kerry"}, article_facets(doc))
    assert {"kerry", filter_token("entities.person", "John Kerry"),
            filter_token("topics.label", "politics"), filter_token("source.name", "BBC"),
            filter_token("language", "en")} <= tokens  # fmt: skip


def test_new_alert_checks_query_filters_digest_and_webhook() -> None:
    alert = new_alert("kerry", "kerry", ["people=John Kerry"], digest="1h",
                      webhook="http://127.0.0.1:9/hook", allow_private=True)  # fmt: skip
    assert alert.filters == ("entities.person=John Kerry",) and alert.digest_seconds == 3600
    assert len(alert.secret) == 64 and "secret" not in alert.public()
    with pytest.raises(QuerySyntaxError, match="position 6"):
        new_alert("bad", 'kerry "talks')
    with pytest.raises(ConfigError, match="webhook URL refused"):
        new_alert("hook", "kerry", webhook="http://127.0.0.1:9/hook")
    with pytest.raises(ConfigError, match="webhook URL refused"):
        new_alert("hook", "kerry", webhook="file:///etc/passwd", allow_private=True)
    with pytest.raises(ConfigError, match="unknown facet"):
        new_alert("f", "kerry", ["colour=red"])
    with pytest.raises(ConfigError, match="alert name"):
        new_alert("no spaces", "kerry")
    with pytest.raises(ConfigError, match="needs a query"):
        new_alert("empty", " ")
    assert parse_duration("15m") == 900
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_idempotency_key_is_stable_per_match() -> None:
    assert idempotency_key("a", "x", "1") == idempotency_key("a", "x", "1")
    assert idempotency_key("a", "x", "1") != idempotency_key("a", "x", "2")

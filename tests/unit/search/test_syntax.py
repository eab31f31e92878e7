"""The query language's parser: what it accepts, and where it refuses."""

import pytest

from pipeline.errors import QuerySyntaxError
from pipeline.search.query import SearchRequest, build_body, query_clause
from pipeline.search.syntax import Group, Not, Phrase, Term, parse_query


def test_words_operators_phrases_and_groups() -> None:
    query = 'kerry +lavrov | "peace talks"~2 -(syria | iran) sanction* merkle~1'
    tree = parse_query(query)
    assert tree.ops == ("and", "or", "and", "and", "and")
    kerry, lavrov, phrase, negation, prefix, fuzzy = tree.items
    assert kerry == Term("kerry", 0) and lavrov == Term("lavrov", 7)
    assert phrase == Phrase("peace talks", 16, slop=2)
    assert isinstance(negation, Not) and isinstance(negation.child, Group)
    assert [i.text for i in negation.child.items] == ["syria", "iran"]  # type: ignore[union-attr]
    assert prefix == Term("sanction", query.index("sanction"), prefix=True)
    assert fuzzy == Term("merkle", query.index("merkle"), fuzzy=True)


def test_hyphen_inside_a_word_and_escapes_are_words() -> None:
    tree = parse_query(r"e-mail \"quoted\" a\|b")
    assert [i.text for i in tree.items] == ["e-mail", '"quoted"', "a|b"]  # type: ignore[union-attr]


def test_empty_query_is_an_empty_group() -> None:
    assert parse_query("   ") == Group((), (), 0)


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ('kerry "peace talks', 6, "unclosed quote"),
        ("(kerry | lavrov", 0, "never closed"),
        ("kerry)", 5, "without a matching"),
        ("kerry |", 6, "no operand after"),
        ("| kerry", 0, "no operand before"),
        ("kerry | + lavrov", 8, "follows another operator"),
        ("kerry -", 6, "'-' has no operand"),
        ("a ()", 2, "empty group"),
        ('a ""', 2, "empty phrase"),
        ("kerry\\", 5, "escapes nothing"),
    ],
)
def test_bad_queries_are_refused_with_the_position(query: str, position: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError, match=reason) as caught:
        parse_query(query)
    assert caught.value.position == position
    assert f"position {position}" in str(caught.value)


def test_search_and_standing_queries_use_the_same_clause() -> None:
    body = build_body(SearchRequest(query="kerry -lavrov", filters=("person=John Kerry",)))
    assert body["query"] == query_clause("kerry -lavrov", ["person=John Kerry"])
    with pytest.raises(QuerySyntaxError):
        build_body(SearchRequest(query='"unclosed'))

"""Entity spans -> cleaned, typed, canonical mentions (no spaCy model needed)."""

from __future__ import annotations

from pipeline.enrich.entities import RawMention, Span, canonicalize, clean_spans


def _spans(text: str, items: list[tuple[str, str]]) -> list[Span]:
    out, pos = [], 0
    for surface, label in items:
        start = text.index(surface, pos)
        out.append(Span(label, start, start + len(surface)))
        pos = start + len(surface)
    return out


def test_clean_spans_offsets_titles_and_possessives() -> None:
    text = (
        "US Secretary of State John Kerry said Syria's war must end, said Secretary of State Kerry."
    )
    spans = _spans(
        text,
        [
            ("US", "GPE"),
            ("Secretary of State John Kerry", "PERSON"),
            ("Syria's", "GPE"),
            ("Kerry", "PERSON"),
        ],
    )
    mentions = clean_spans(text, spans, "body")
    names = [(m.type, m.name) for m in mentions]
    assert names == [
        ("location", "US"),
        ("person", "John Kerry"),
        ("location", "Syria"),
        ("person", "Kerry"),
    ]
    for m in mentions:
        assert text[m.start : m.end] == m.name


def test_org_without_role_context_stays_org() -> None:
    text = "Shares in Goldman Sachs rose."
    mentions = clean_spans(text, _spans(text, [("Goldman Sachs", "ORG")]), "body")
    assert [(m.type, m.name) for m in mentions] == [("organization", "Goldman Sachs")]


def _m(etype: str, name: str, field: str = "body") -> RawMention:
    return RawMention(etype, name, field, 0, len(name))  # type: ignore[arg-type]


def test_canonicalize_one_entity_per_person_and_aliases() -> None:
    mentions = [
        _m("person", "Kerry", "title"),
        _m("person", "John Kerry"),
        _m("location", "US"),
        _m("location", "United States"),
        _m("location", "America"),
        _m("organization", "Islamic State"),
        _m("organization", "IS"),
        _m("location", "Kerry"),  # model slip: short name typed as a place
        _m("person", "Putin"),
        _m("person", "Vladimir Putin"),
        _m("location", "UN"),  # alias table fixes the type too
    ]
    result = canonicalize(mentions)
    assert result.entities.person == ["John Kerry", "Vladimir Putin"]
    assert result.entities.location == ["United States"]
    assert result.entities.organization == ["Islamic State", "United Nations"]
    assert [m.canonical for m in result.mentions][:2] == ["John Kerry", "John Kerry"]
    assert result.mentions[0].text == "Kerry"


def test_canonicalize_majority_type_and_spelling() -> None:
    mentions = [_m("organization", "Acme"), _m("organization", "ACME"), _m("location", "Acme")]
    result = canonicalize(mentions)
    assert result.entities.organization == ["Acme"]
    assert result.entities.location == []


def test_canonicalize_osbournes_one_facet_value_per_person() -> None:
    names = ["Ozzy Osbourne", "Ozzy", "Sharon", "Osbourne", "Sharon Osbourne", "Ozzy"]
    result = canonicalize([_m("person", n) for n in names])
    assert result.entities.person == ["Ozzy Osbourne", "Sharon Osbourne"]
    by_text = {m.text: m.canonical for m in result.mentions}
    assert by_text["Ozzy"] == "Ozzy Osbourne" and by_text["Sharon"] == "Sharon Osbourne"
    assert by_text["Osbourne"] == "Osbourne"  # kept as a mention, not listed

"""Canonical names: cleaning, title stripping, alias table, in-article person linking."""

from __future__ import annotations

import pytest

from pipeline.enrich.canonical import (
    AliasTable,
    clean_mention,
    link_person_names,
    load_alias_table,
    normalize_key,
    strip_titles,
)
from pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "clean", "left", "right"),
    [
        ("Syria's", "Syria", 0, 2),
        ("Syria’s", "Syria", 0, 2),
        ("Jones'", "Jones", 0, 1),
        ("the United Nations,", "United Nations", 4, 1),
        ('"Kerry"', "Kerry", 1, 1),
        ("Moscow.", "Moscow", 0, 1),
        ("U.S.", "U.S.", 0, 0),
        ("Bashar al-Assad", "Bashar al-Assad", 0, 0),
        ("(Reuters)", "Reuters", 1, 1),
    ],
)
def test_clean_mention(raw: str, clean: str, left: int, right: int) -> None:
    trim = clean_mention(raw)
    assert (trim.text, trim.left, trim.right) == (clean, left, right)
    assert raw[trim.left : len(raw) - trim.right] == clean


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("US Secretary of State John Kerry", "John Kerry"),
        ("Secretary of State John Kerry", "John Kerry"),
        ("Mr Kerry", "Kerry"),
        ("Mr. Kerry", "Kerry"),
        ("President Vladimir Putin", "Vladimir Putin"),
        ("Foreign Minister Sergei Lavrov", "Sergei Lavrov"),
        ("UN envoy Staffan de Mistura", "Staffan de Mistura"),
        ("Staffan de Mistura", "Staffan de Mistura"),
        ("Prince", "Prince"),
        ("Mr President", "Mr President"),
        ("Prince Charles", "Prince Charles"),
        ("Dr al-Zawahiri", "al-Zawahiri"),
    ],
)
def test_strip_titles(raw: str, name: str) -> None:
    trim = strip_titles(raw)
    assert trim.text == name
    assert raw[trim.left :] == name


def test_normalize_key() -> None:
    assert normalize_key("U.S.") == normalize_key("US") == "us"
    assert normalize_key("the  United Nations") == "united nations"
    assert normalize_key("Ａｓｓａｄ") == "assad"  # NFKC full-width


def test_packaged_alias_table() -> None:
    table = load_alias_table()
    for spelling in ("US", "U.S.", "United States", "America", "the United States"):
        entry = table.lookup(spelling)
        assert entry is not None and entry.canonical == "United States"
        assert entry.type == "location"
    for spelling in ("UN", "U.N.", "the United Nations", "UNITED NATIONS"):
        entry = table.lookup(spelling)
        assert entry is not None and entry.canonical == "United Nations"
    for spelling in ("IS", "ISIS", "ISIL", "Islamic State group", "Daesh"):
        entry = table.lookup(spelling)
        assert entry is not None and (entry.canonical, entry.type) == (
            "Islamic State",
            "organization",
        )
    assert table.lookup("Narnia") is None


def test_alias_table_rejects_conflicts_and_bad_types() -> None:
    with pytest.raises(ConfigError):
        AliasTable(
            [
                {"canonical": "A", "type": "person", "aliases": ["X"]},
                {"canonical": "B", "type": "person", "aliases": ["X"]},
            ]
        )
    with pytest.raises(ConfigError):
        AliasTable([{"canonical": "A", "type": "planet"}])
    with pytest.raises(ConfigError):
        AliasTable.from_yaml("- just a list")


def test_link_person_names_surname_and_particles() -> None:
    links = link_person_names(
        ["John Kerry", "Kerry", "Kerry", "Vladimir Putin", "Putin", "Bashar al-Assad", "Assad"]
    )
    assert links["Kerry"] == "John Kerry"
    assert links["Putin"] == "Vladimir Putin"
    assert links["Assad"] == "Bashar al-Assad"
    assert links["John Kerry"] == "John Kerry"


def test_link_person_names_ambiguous_surname_stays() -> None:
    links = link_person_names(["George Bush", "Jeb Bush", "Bush"])
    assert links["Bush"] == "Bush"
    links = link_person_names(["George Bush", "George Bush", "Jeb Bush", "Bush"])
    assert links["Bush"] == "George Bush"


def test_given_name_alone_takes_the_full_name() -> None:
    links = link_person_names(["Ozzy Osbourne", "Ozzy", "Osbourne", "Ozzy"])
    assert links["Ozzy"] == "Ozzy Osbourne"
    assert links["Osbourne"] == "Ozzy Osbourne"


def test_shared_surname_is_a_short_form_not_a_facet_value() -> None:
    from pipeline.enrich.canonical import short_forms

    names = ["Ozzy Osbourne", "Sharon Osbourne", "Osbourne", "Ozzy", "Sharon", "Tony Blair"]
    links = link_person_names(names)
    assert links["Ozzy"] == "Ozzy Osbourne" and links["Sharon"] == "Sharon Osbourne"
    assert links["Osbourne"] == "Osbourne"  # ambiguous: neither full name
    assert short_forms(links.values()) == {"Osbourne"}

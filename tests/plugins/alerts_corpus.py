"""pytest plugin (fixture ``alerts_corpus``): a small replay corpus and standing queries for
the equality test: stemming, folding, possessives, phrases, boolean operators, negation,
prefixes and facet filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.models import EnrichedArticle, Entities, Source, Topic

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

# (title, body, persons, locations, topic, source, language)
ROWS = [
    ("Kerry talks with Lavrov in Moscow", "The secretary talked for hours about Syria.",
     ["John Kerry", "Sergei Lavrov"], ["Moscow"], "politics", "BBC", "en"),
    ("Peace talks resume in Vienna", "Diplomats said the peace talks would resume on Monday.",
     ["Federica Mogherini"], ["Vienna"], "politics", "Reuters", "en"),
    ("Talking peace: a long road", "Negotiators are talking but no peace deal is near.",
     [], ["Geneva"], "politics", "Guardian", "en"),
    ("Central bank raises rates", "The central bank raised interest rates by a quarter point.",
     ["Janet Yellen"], ["Washington"], "economy, business and finance", "Reuters", "en"),
    ("Banks' profits fall", "Profits at the biggest banks fell as rates stayed low.",
     [], ["London"], "economy, business and finance", "FT", "en"),
    ("Café owners protest rent rises", "Cafe owners in Paris protested against rent.",
     [], ["Paris"], "economy, business and finance", "Le Monde", "en"),
    ("Storm hits the coast", "A storm hit the coast; thousands lost power.",
     [], ["Florida"], "weather", "AP", "en"),
    ("Storms and floods in Texas", "Flooding followed storms across Texas overnight.",
     [], ["Texas"], "weather", "AP", "en"),
    ("Election results in Germany", "Merkel's party won the election in Germany.",
     ["Angela Merkel"], ["Germany"], "politics", "DW", "en"),
    ("Merkel meets Macron", "Angela Merkel and Emmanuel Macron met in Berlin about the euro.",
     ["Angela Merkel", "Emmanuel Macron"], ["Berlin"], "politics", "DW", "en"),
    ("Football: Germany beat France", "Germany beat France two-nil in the friendly match.",
     [], ["Germany", "France"], "sport", "BBC", "en"),
    ("Tennis final postponed by rain", "Rain postponed the tennis final in London.",
     [], ["London"], "sport", "Guardian", "en"),
    ("Oil prices jump after OPEC deal", "Oil prices jumped after the OPEC deal in Vienna.",
     [], ["Vienna"], "economy, business and finance", "Bloomberg", "en"),
    ("Sanctions on Russia extended", "The EU extended sanctions on Russia for six months.",
     [], ["Russia"], "politics", "Reuters", "en"),
    ("New sanctioning rules", "Rules for sanctioning banks were published.",
     [], [], "economy, business and finance", "FT", "en"),
    ("Wahl in Deutschland", "Die Wahl in Deutschland ist entschieden.",
     ["Angela Merkel"], ["Deutschland"], "politics", "Spiegel", "de"),
    ("Kerry visits Paris", "John Kerry visited Paris to talk about climate.",
     ["John Kerry"], ["Paris"], "environment", "AP", "en"),
    ("Climate summit opens in Paris", "The climate summit opened in Paris with 150 leaders.",
     [], ["Paris"], "environment", "Le Monde", "en"),
    ("Climate deal reached", "A climate deal was reached; Kerry said it was historic.",
     ["John Kerry"], ["Paris"], "environment", "Guardian", "en"),
    ("Earthquake in Chile", "An earthquake struck northern Chile; no damage reported.",
     [], ["Chile"], "disaster, accident and emergency incident", "AP", "en"),
    ("Apple unveils new phone", "Apple unveiled a new phone in Cupertino.",
     ["Tim Cook"], ["Cupertino"], "science and technology", "Verge", "en"),
    ("Apples and pears: harvest report", "The apple harvest was poor this year.",
     [], [], "economy, business and finance", "Farmers Weekly", "en"),
    ("Lavrov warns the West", "Sergei Lavrov warned of consequences over sanctions.",
     ["Sergei Lavrov"], ["Moscow"], "politics", "RT", "en"),
    ("Kerry and Lavrov agree ceasefire", "Kerry and Lavrov agreed a ceasefire for Syria.",
     ["John Kerry", "Sergei Lavrov"], ["Geneva", "Syria"], "conflict, war and peace", "BBC", "en"),
]  # fmt: skip

# (name, query, filters)
QUERIES: list[tuple[str, str, tuple[str, ...]]] = [
    ("stem-talk", "talk", ()),
    ("stem-talking", "talking", ()),
    ("phrase-peace-talks", '"peace talks"', ()),
    ("phrase-slop", '"peace deal"~3', ()),
    ("and", "kerry lavrov", ()),
    ("explicit-and", "kerry + paris", ()),
    ("or", "storm | earthquake", ()),
    ("not", "kerry -lavrov", ()),
    ("not-group", "climate -(kerry | summit)", ()),
    ("group-or", "(merkel | macron) berlin", ()),
    ("mixed", "germany | france election", ()),
    ("fold", "cafe", ()),
    ("fold-accent", "café", ()),
    ("possessive", "bank", ()),
    ("prefix", "sanction*", ()),
    ("stopword-and", "the storm", ()),
    ("only-negation", "-kerry", ("topic=politics",)),
    ("filter-person", "", ("person=John Kerry",)),
    ("filter-and-text", "ceasefire", ("person=Sergei Lavrov",)),
    ("filter-location", "talks", ("location=Vienna",)),
    ("filter-language", "wahl", ("language=de",)),
    ("filter-source", "storm", ("source=AP",)),
    ("filter-topic", "deal", ("topic=economy, business and finance",)),
    ("two-filters", "", ("person=Angela Merkel", "language=en")),
    ("no-match", "volcano", ()),
    ("fuzzy", "lavrof~1", ()),
    ("apple", "apple", ()),
    ("title-word-or-phrase", 'rates | "interest rates"', ()),
]


def articles() -> list[EnrichedArticle]:
    out = []
    for n, (title, body, persons, places, topic, source, language) in enumerate(ROWS):
        at = T0 + timedelta(minutes=n)
        out.append(
            EnrichedArticle(
                id=f"eq{n:03d}",
                url=f"https://news.example/{n}",
                title=title,
                body=body,
                published_at=at,
                fetched_at=at,
                source=Source(name=source, domain=f"{source.lower().replace(' ', '')}.example"),
                language=language,
                entities=Entities(person=persons, location=places),
                topics=[Topic(code="medtop:x", label=topic, score=0.9)],
                cluster_id=f"eq{n:03d}",
            )
        )
    return out


@dataclass(frozen=True)
class AlertsCorpus:
    """The standing queries and the articles of the equality test."""

    queries: list[tuple[str, str, tuple[str, ...]]]
    articles: list[EnrichedArticle]


@pytest.fixture
def alerts_corpus() -> AlertsCorpus:
    """A fresh copy of the corpus (articles are rebuilt for each test)."""
    return AlertsCorpus(list(QUERIES), articles())

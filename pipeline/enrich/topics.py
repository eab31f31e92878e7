"""IPTC Media Topics (top level) from weighted keyword profiles, explainable by design.

Every topic has a profile of weighted terms: hand-written (``pipeline/data/iptc_topics.yaml``),
derived from the IPTC vocabulary (``iptc_terms.yaml``) and from unlabelled newswire
(``topic_corpus.yaml``: per-term reliability factors and organisations known to belong to
a topic, learnt by self-training, see ``topic_corpus.py``). A text's evidence for a topic
is the sum over matched terms of ``weight * (1 + ln tf)``, where the headline's term
frequencies are damped apart from the rest of the text: the headline votes on its own,
however often the body repeats a word. The text is matched twice: with the light fold of
:func:`stem` (plurals, possessives) and with the Snowball (Porter 2) stemmer, which also
joins "elect/election/elected"; a topic's evidence is the light evidence plus half of what
the stronger stemming adds (:data:`STEM_BLEND`), so a fuzzier match counts for less. The
organisations the article names add evidence (:func:`entity_evidence`). The score in
[0, 1] grows with that evidence relative to the text's length and is scaled by how close
the topic comes to the best one. ``explain_topics`` returns the exact per-term
contributions behind each score (``~stems`` names the part that only the stronger stemming
found).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import snowballstemmer
import yaml

from pipeline.enrich.words import stop_words
from pipeline.errors import ConfigError
from pipeline.models import Mention, Topic

BAND_WEIGHTS = {"w3": 3.0, "w2": 1.5, "w1": 0.5}
THRESHOLD = 0.25  # secondary topics need at least this score
MAX_TOPICS = 5
#: Below this raw evidence a text of ``REFERENCE_TOKENS`` or more gets no topic at all; a
#: shorter text needs proportionally less, on the length scale the scores use (a headline
#: and one line cannot repeat a term the way a whole article does).
MIN_EVIDENCE = 1.5
REFERENCE_TOKENS = 300
#: Share of the extra evidence that Snowball stemming finds (beyond the light fold) that
#: counts: half, as a stemmed match ("important" ~ "import") is less certain than a word.
STEM_BLEND = 0.5

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-'’&.][a-z0-9]+)*|[%$£€]")


def stem(token: str) -> str:
    """A light, predictable English fold: plural and possessive endings only."""
    token = token.replace("’", "'")
    if token.endswith("'s"):
        token = token[:-2]
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 4 and token.endswith("sses"):
        return token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (and currency / percent signs), stemmed."""
    return [stem(t) for t in _TOKEN_RE.findall(text.casefold())]


#: One Snowball stemmer per thread: a stemmer keeps the word it works on in the object,
#: and the worker enriches parts of a batch on several NLP threads.
_SNOWBALL = threading.local()


@lru_cache(maxsize=65536)
def strong_stem(token: str) -> str:
    """The Snowball English (Porter 2) stem of an already :func:`stem`-med word token."""
    if not token.isalpha():
        return token
    stemmer = getattr(_SNOWBALL, "english", None)
    if stemmer is None:
        stemmer = _SNOWBALL.english = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(token))


@dataclass
class TopicLexicon:
    """Weighted term profiles for every top-level IPTC Media Topic."""

    version: int | str
    labels: dict[str, str]
    unigrams: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    phrases: dict[tuple[str, ...], list[tuple[str, float]]] = field(default_factory=dict)
    max_phrase: int = 1
    #: The same terms under :func:`strong_stem` (built by :meth:`from_mapping`).
    stemmed: TopicLexicon | None = None
    #: Organisations known to belong to one topic: casefolded name -> code.
    organizations: dict[str, str] = field(default_factory=dict)
    #: Lengths of the phrases that start with a token, longest first (for :meth:`matches`).
    _starts: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for toks in self.phrases:
            self._index(toks)

    def _index(self, toks: tuple[str, ...]) -> None:
        sizes = {*self._starts.get(toks[0], ()), len(toks)}
        self._starts[toks[0]] = tuple(sorted(sizes, reverse=True))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TopicLexicon:
        """Profiles ``{topics: {code: {label, w3, w2, w1}}}``; an optional ``scale``
        ``{term: {code: factor}}`` multiplies a term's weight for a topic, and optional
        ``organizations`` ``{name: code}`` are organisations known to belong to a topic."""
        topics = data.get("topics")
        if not isinstance(topics, Mapping) or not topics:
            raise ConfigError("topic lexicon: expected a 'topics' mapping")
        scale: Mapping[str, Mapping[str, float]] = data.get("scale") or {}
        stop = stop_words()
        lex = cls(version=data.get("version", 0), labels={})
        lex.organizations = {
            str(name).casefold(): str(code)
            for name, code in (data.get("organizations") or {}).items()
            if str(code) in topics
        }
        strong: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for code, spec in topics.items():
            lex.labels[str(code)] = str(spec["label"])
            best: dict[tuple[str, ...], float] = {}
            for band, weight in BAND_WEIGHTS.items():
                for term in spec.get(band) or []:
                    toks = tuple(tokenize(str(term)))
                    if not toks or (len(toks) == 1 and toks[0] in stop):
                        continue
                    best[toks] = max(best.get(toks, 0.0), weight)
            for toks, weight in best.items():
                weight *= float((scale.get(" ".join(toks)) or {}).get(str(code), 1.0))
                lex._add(toks, str(code), weight)
                key = tuple(strong_stem(t) for t in toks)
                strong[key][str(code)] = max(strong[key].get(str(code), 0.0), weight)
        lex.stemmed = cls(version=lex.version, labels=lex.labels)
        for key, weights in strong.items():
            for code, weight in weights.items():
                lex.stemmed._add(key, code, weight)
        return lex

    def _add(self, toks: tuple[str, ...], code: str, weight: float) -> None:
        if len(toks) == 1:
            self.unigrams.setdefault(toks[0], []).append((code, weight))
        else:
            self.phrases.setdefault(toks, []).append((code, weight))
            self.max_phrase = max(self.max_phrase, len(toks))
            self._index(toks)

    def matches(self, tokens: Sequence[str]) -> Iterable[tuple[str, list[tuple[str, float]]]]:
        """Greedy longest-first matches: (term, [(code, weight), ...])."""
        i, n = 0, len(tokens)
        while i < n:
            for size in self._starts.get(tokens[i], ()):
                hit = self.phrases.get(tuple(tokens[i : i + size])) if i + size <= n else None
                if hit:
                    yield " ".join(tokens[i : i + size]), hit
                    i += size
                    break
            else:
                hit1 = self.unigrams.get(tokens[i])
                if hit1:
                    yield tokens[i], hit1
                i += 1


#: Term bands of the IPTC-derived profiles that are used (see ``iptc_terms.py``).
DERIVED_BANDS = ("w2",)


def merge_profiles(
    hand: Mapping[str, Any], derived: Mapping[str, Any], corpus: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The hand-written profiles with the derived terms added band by band, and the
    reliability factors and known organisations learnt from newswire (``corpus``) when
    given."""
    topics = {code: dict(spec) for code, spec in hand["topics"].items()}
    for code, spec in (derived.get("topics") or {}).items():
        if code not in topics:
            continue
        for band in DERIVED_BANDS:
            extra = spec.get(band) or []
            topics[code][band] = [*(topics[code].get(band) or []), *extra]
    version = f"{hand.get('version', 0)}+iptc" + ("+corpus" if corpus else "")
    scale = dict((corpus or {}).get("scale") or {})
    organizations = dict((corpus or {}).get("organizations") or {})
    return {"version": version, "topics": topics, "scale": scale, "organizations": organizations}


@lru_cache(maxsize=1)
def load_lexicon() -> TopicLexicon:
    """The packaged lexicon, read once: the hand-written profiles
    (``pipeline/data/iptc_topics.yaml``), the terms derived from the IPTC Media Topic
    vocabulary (``pipeline/data/iptc_terms.yaml``, CC BY 4.0) and the term reliability
    factors learnt from unlabelled newswire (``pipeline/data/topic_corpus.yaml``)."""
    data = resources.files("pipeline.data")
    hand = yaml.safe_load(data.joinpath("iptc_topics.yaml").read_text("utf-8"))
    derived = yaml.safe_load(data.joinpath("iptc_terms.yaml").read_text("utf-8"))
    corpus = yaml.safe_load(data.joinpath("topic_corpus.yaml").read_text("utf-8"))
    return TopicLexicon.from_mapping(merge_profiles(hand, derived, corpus))


@dataclass(frozen=True, slots=True)
class TopicEvidence:
    """Raw evidence per topic code and the per-term contributions behind it."""

    raw: dict[str, float]
    terms: dict[str, list[tuple[str, float]]]
    n_tokens: int


def _match_evidence(
    token_fields: Iterable[tuple[str, list[str]]], lex: TopicLexicon
) -> tuple[dict[str, float], dict[str, list[tuple[str, float]]]]:
    """Per topic: the summed ``weight * (1 + ln tf)`` (the headline's tf apart from the
    other fields') and the per-term contributions."""
    tf: Counter[tuple[bool, str]] = Counter()
    hits: dict[str, list[tuple[str, float]]] = {}
    for name, tokens in token_fields:
        for term, codes in lex.matches(tokens):
            tf[(name == "title", term)] += 1
            hits[term] = codes
    raw: dict[str, float] = defaultdict(float)
    per_term: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (_, term), freq in tf.items():
        damp = 1.0 + math.log(freq)
        for code, weight in hits[term]:
            contribution = weight * damp
            raw[code] += contribution
            per_term[code][term] += contribution
    terms = {
        code: [(term, round(value, 3)) for term, value in items.items()]
        for code, items in per_term.items()
    }
    return dict(raw), dict(terms)


def gather_evidence(
    fields: Mapping[str, str], lexicon: TopicLexicon | None = None, blend: float = STEM_BLEND
) -> TopicEvidence:
    """Sum weighted term matches over the text fields (the ``title`` damped apart), plus
    ``blend`` times what matching the Snowball stems adds (named ``~stem, ...``)."""
    lex = lexicon or load_lexicon()
    tokenized = [(name, tokenize(text)) for name, text in fields.items()]
    raw, terms = _match_evidence(tokenized, lex)
    if blend > 0 and lex.stemmed is not None:
        strong = [(name, [strong_stem(t) for t in tokens]) for name, tokens in tokenized]
        s_raw, s_terms = _match_evidence(strong, lex.stemmed)
        for code, value in s_raw.items():
            extra = blend * (value - raw.get(code, 0.0))
            if extra <= 0:
                continue
            seen = {
                " ".join(strong_stem(w) for w in term.split()) for term, _ in terms.get(code, [])
            }
            new = [term for term, _ in s_terms[code] if term not in seen]
            raw[code] = raw.get(code, 0.0) + extra
            terms.setdefault(code, []).append((f"~{', '.join(new) or 'stems'}", round(extra, 3)))
    for code in terms:
        terms[code].sort(key=lambda tw: (-tw[1], tw[0]))
    return TopicEvidence(raw=raw, terms=terms, n_tokens=sum(len(t) for _, t in tokenized))


#: Words in an organisation's name that tie it to a topic ("Manchester United" -> sport,
#: "Labour Party" -> politics, "BMW Group" -> economy). Written from general knowledge of
#: how organisations are named, not fitted to any labelled data.
ORG_NAME_TOPICS: dict[str, frozenset[str]] = {
    "medtop:15000000": frozenset(
        {"fc", "united", "city", "rovers", "athletic", "wanderers", "hotspur", "albion",
         "club", "olympic", "fifa", "uefa", "iaaf", "rfu", "wru", "league", "rugby",
         "football", "cricket", "tennis"}
    ),
    "medtop:11000000": frozenset(
        {"party", "parliament", "commons", "lords", "ministry", "government", "council",
         "commission", "senate", "congress", "cabinet", "labour", "tory", "tories",
         "conservative", "conservatives", "democrats", "republicans", "dem", "dems", "ukip",
         "eu", "un", "nato"}
    ),
    "medtop:04000000": frozenset(
        {"plc", "inc", "corp", "ltd", "group", "holdings", "bank", "airlines", "airways",
         "motors", "fund", "capital", "securities", "exchange", "stock", "imf", "opec", "wto"}
    ),
    "medtop:13000000": frozenset(
        {"software", "technologies", "systems", "labs", "electronics", "computer",
         "networks", "nasa"}
    ),
    "medtop:01000000": frozenset(
        {"records", "pictures", "studios", "films", "orchestra", "theatre", "academy"}
    ),
}  # fmt: skip
ORG_NAMED_WEIGHT = 3.0  # an organisation whose name says its topic: a strong term
#: Any other organisation is most often a company: weak evidence for economy and business.
ORG_DEFAULT_TOPIC, ORG_DEFAULT_WEIGHT = "medtop:04000000", 1.0


def entity_evidence(
    mentions: Iterable[Mention], known: Mapping[str, str] | None = None
) -> dict[str, list[tuple[str, float]]]:
    """Topic evidence from the organisations an article names: ``{code: [(name, w)]}``.

    An organisation that ``known`` (casefolded name -> code, learnt from newswire) ties to a
    topic, or else whose name says its topic, weighs :data:`ORG_NAMED_WEIGHT` for it; any
    other one is weak evidence for economy."""
    known = known or {}
    counts: dict[str, int] = defaultdict(int)
    for m in mentions:
        if m.type == "organization":
            counts[m.canonical] += 1
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for name, n in counts.items():
        words = {w.casefold().strip(".,") for w in name.replace("-", " ").split()}
        damp = 1.0 + math.log(n)
        named = (
            [known[name.casefold()]]
            if name.casefold() in known
            else [code for code, names in ORG_NAME_TOPICS.items() if words & names]
        )
        for code in named:
            out[code].append((name, round(ORG_NAMED_WEIGHT * damp, 3)))
        if not named:
            out[ORG_DEFAULT_TOPIC].append((name, round(ORG_DEFAULT_WEIGHT * damp, 3)))
    return dict(out)


def with_entities(
    evidence: TopicEvidence, mentions: Iterable[Mention], known: Mapping[str, str] | None = None
) -> TopicEvidence:
    """``evidence`` plus :func:`entity_evidence` (entity contributions named ``@name``)."""
    raw = dict(evidence.raw)
    terms = {code: list(items) for code, items in evidence.terms.items()}
    for code, items in entity_evidence(mentions, known).items():
        raw[code] = raw.get(code, 0.0) + sum(w for _, w in items)
        terms.setdefault(code, []).extend((f"@{name}", w) for name, w in items)
    return TopicEvidence(raw=raw, terms=terms, n_tokens=evidence.n_tokens)


def _evidence_scale(n_tokens: int) -> float:
    """Evidence expected from a clearly on-topic text: grows ~ sqrt(length)."""
    return 4.0 + 1.2 * math.sqrt(max(n_tokens, 1))


def scores_from_evidence(evidence: TopicEvidence) -> dict[str, float]:
    """Scores in [0, 1]: saturating in length-normalised evidence, relative to the best."""
    if not evidence.raw:
        return {}
    best = max(evidence.raw.values())
    scale = _evidence_scale(evidence.n_tokens)
    if best < MIN_EVIDENCE * min(1.0, scale / _evidence_scale(REFERENCE_TOKENS)):
        return {}
    out: dict[str, float] = {}
    for code, value in evidence.raw.items():
        strength = 1.0 - math.exp(-value / scale)
        out[code] = round(strength * (value / best), 4)
    return out


def score_topics(
    fields: Mapping[str, str],
    lexicon: TopicLexicon | None = None,
    threshold: float = THRESHOLD,
    max_topics: int = MAX_TOPICS,
    mentions: Iterable[Mention] = (),
) -> list[Topic]:
    """Best-first IPTC topics above ``threshold`` (the best one is always kept); the
    article's organisation ``mentions`` count as evidence too."""
    lex = lexicon or load_lexicon()
    scores = scores_from_evidence(
        with_entities(gather_evidence(fields, lex), mentions, lex.organizations)
    )
    ranked = sorted(scores.items(), key=lambda cs: (-cs[1], cs[0]))
    return [
        Topic(code=code, label=lex.labels[code], score=score)
        for i, (code, score) in enumerate(ranked[:max_topics])
        if i == 0 or score >= threshold
    ]


def explain_topics(
    text: str | Mapping[str, str], lexicon: TopicLexicon | None = None
) -> dict[str, list[tuple[str, float]]]:
    """What drove each topic's score: ``{code: [(term, contribution), ...]}``, best first.

    ``text`` is a body string or a mapping of fields (``{"title": ..., "body": ...}``).
    """
    fields = {"body": text} if isinstance(text, str) else text
    evidence = gather_evidence(fields, lexicon)
    order = sorted(evidence.raw, key=lambda c: -evidence.raw[c])
    return {code: evidence.terms[code] for code in order}

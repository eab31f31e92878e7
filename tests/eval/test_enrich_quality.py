"""Quality gates for the enrichment stage on ../shared/eval (``pytest -m eval``).

A gate fails when a score falls below its recorded baseline (minus the tolerance) or below
the acceptance number of issue 10, and says so when the data no longer matches the hash the
baseline was recorded on. The recogniser is the real CoreNLP server of the ``corenlp_url``
fixture (the default backend). Re-record with
``python -m workshop.evaluation --update-baselines``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workshop import evaluation as ev

pytestmark = pytest.mark.eval

BASELINES: dict[str, Any] = ev.read_baselines()
TOL = float(BASELINES.get("tolerance", ev.TOLERANCE))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}: set NEWSWIRE_EVAL_DIR to the evaluation data")
    return path


@pytest.fixture(scope="module")
def enricher(corenlp_url: str) -> Any:
    pytest.importorskip("lingua", reason="lingua not installed: pip install 'newswire[nlp]'")
    from pipeline.enrich.corenlp import CoreNLPRecogniser
    from pipeline.enrich.enricher import Enricher

    return Enricher(recogniser=CoreNLPRecogniser(corenlp_url))


def _check_hash(section: str, actual: str) -> None:
    recorded = BASELINES.get(section, {}).get("data_sha256")
    assert recorded == actual, (
        f"{section}: evaluation data differs from the data the baseline was recorded on "
        f"(recorded {recorded}, now {actual}); scores are not comparable - re-record the "
        "baseline with `python -m workshop.evaluation --update-baselines` if this is "
        "intended"
    )


def _gate(name: str, score: float, baseline: float, acceptance: float | None) -> None:
    assert score >= baseline - TOL, f"{name} {score:.4f} dropped below baseline {baseline:.4f}"
    if acceptance is not None:
        assert score >= acceptance, f"{name} {score:.4f} is below the acceptance {acceptance}"


@pytest.fixture(scope="module")
def conll(enricher: Any) -> dict[str, Any]:
    path = _require(ev.eval_dir() / ev.CONLL_FILE, "CoNLL-2003 dev")
    return ev.evaluate_conll(path, enricher)


@pytest.fixture(scope="module")
def bbc(enricher: Any) -> dict[str, Any]:
    path = _require(ev.eval_dir() / ev.BBC_DIR, "bbc-dev")
    return ev.evaluate_bbc(path, enricher)


@pytest.fixture(scope="module")
def bbc_short(enricher: Any) -> dict[str, Any]:
    path = _require(ev.eval_dir() / ev.BBC_DIR, "bbc-dev")
    return ev.evaluate_bbc(path, enricher, short=True)


def test_conll_data_unchanged(conll: dict[str, Any]) -> None:
    _check_hash("conll", conll["data_sha256"])


def test_conll_entity_f1(conll: dict[str, Any]) -> None:
    base = BASELINES["conll"]
    _gate("CoNLL micro-F1", conll["f1"], base["f1"], ev.ACCEPTANCE["conll_f1"])
    for kind, f1 in base["per_type"].items():
        acceptance = ev.ACCEPTANCE["conll_org_f1"] if kind == "ORG" else None
        _gate(f"CoNLL {kind} F1", conll["per_type"][kind]["f1"], f1, acceptance)


def test_bbc_data_unchanged(bbc: dict[str, Any]) -> None:
    _check_hash("bbc", bbc["data_sha256"])


def test_bbc_topic_accuracy(bbc: dict[str, Any]) -> None:
    base = BASELINES["bbc"]
    _gate("bbc top-1 accuracy", bbc["accuracy"], base["accuracy"], None)
    _gate("bbc macro-F1", bbc["macro_f1"], base["macro_f1"], None)


def test_bbc_short_item_topic_accuracy(bbc_short: dict[str, Any]) -> None:
    base = BASELINES["bbc_short"]
    _gate("bbc title + first sentence top-1", bbc_short["accuracy"], base["accuracy"], None)


def test_issue10_whole_article_topic_goal(bbc: dict[str, Any]) -> None:
    assert bbc["accuracy"] >= ev.ACCEPTANCE["bbc_accuracy"]


@pytest.mark.xfail(
    strict=True,
    reason="issue 10's short-item goal (title + first sentence >= 0.85) is not reached yet "
    "(0.8375 on bbc-dev); remove this mark when it is",
)
def test_issue10_short_item_topic_goal(bbc_short: dict[str, Any]) -> None:
    assert bbc_short["accuracy"] >= ev.ACCEPTANCE["bbc_short_accuracy"]


def test_facet_precision_does_not_regress(bbc: dict[str, Any]) -> None:
    facets = ev.facet_precision(bbc["_records"])
    wrong = [
        (facet, row["value"], row["wrong"])
        for facet in ("person", "organization", "location")
        for row in facets[facet]["top"]
        if row["wrong"]
    ]
    assert len(wrong) <= BASELINES["facets"]["wrong_in_top"], wrong


def test_worker_memory_stays_under_a_gigabyte(bbc: dict[str, Any]) -> None:
    assert ev.peak_rss_mib() < ev.MAX_RSS_MIB


def test_seed_article_entities_canonical(enricher: Any) -> None:
    seeds = sorted(ev.seeds_dir().glob(ev.SEED_GLOB))
    if not seeds:
        pytest.skip(f"no seed article in {ev.seeds_dir()}")
    result = ev.evaluate_seed(seeds[0], enricher)
    assert result["passed"], "; ".join(result["problems"])

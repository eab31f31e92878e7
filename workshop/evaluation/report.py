"""``make eval``: run every evaluation whose data is present, print or record the scores.

The recorded scores (``baselines.json``, package data of :mod:`workshop.evaluation`) are what
the quality gates in ``tests/eval`` compare against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from pipeline.enrich.enricher import Enricher
from pipeline.enrich.recogniser import Recogniser
from workshop.evaluation.facets import FACET_TOP, facet_precision
from workshop.evaluation.harness import (
    ACCEPTANCE,
    BBC_DIR,
    CONLL_FILE,
    MAX_RSS_MIB,
    SEED_GLOB,
    TOLERANCE,
    eval_dir,
    evaluate_bbc,
    evaluate_conll,
    evaluate_seed,
    seeds_dir,
)

BASELINES = "baselines.json"


def baselines_path() -> Path:
    """Where the recorded scores live: package data, read through importlib.resources (a
    real file in a source checkout or an editable install, which is where they are updated)."""
    return Path(str(resources.files("workshop.evaluation").joinpath(BASELINES)))


def read_baselines() -> dict[str, Any]:
    """The recorded scores the quality gates compare against."""
    text = resources.files("workshop.evaluation").joinpath(BASELINES).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# --------------------------------------------------------------------------- main -----


@contextlib.contextmanager
def recogniser_for_eval() -> Iterator[Recogniser]:
    """The recogniser ``newswire enrich`` would use: the configured one; for CoreNLP, the
    server that answers or one started for the run (under ``<home>/eval``). No fallback."""
    from pipeline.enrich.recogniser import recogniser_for_run
    from pipeline.settings import get_settings
    from workshop.stack.corenlp import server_for_run

    settings = get_settings()
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    with recogniser_for_run(
        settings, start_local=lambda: server_for_run(settings, "eval", say), say=say
    ) as recogniser:
        yield recogniser


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_all(root: Path | None = None) -> dict[str, Any]:
    """Every evaluation whose data is present; absent data is reported, not failed."""
    with recogniser_for_eval() as recogniser:
        return _run_all(root, Enricher(recogniser=recogniser))


def _run_all(root: Path | None, enricher: Enricher) -> dict[str, Any]:
    base = root or eval_dir()
    results: dict[str, Any] = {"eval_dir": str(base), "recogniser": enricher.recogniser.name}
    conll = base / CONLL_FILE
    results["conll"] = evaluate_conll(conll, enricher) if conll.is_file() else None
    bbc = base / BBC_DIR
    results["bbc"] = evaluate_bbc(bbc, enricher) if bbc.is_dir() else None
    results["bbc_short"] = evaluate_bbc(bbc, enricher, short=True) if bbc.is_dir() else None
    results["facets"] = facet_precision(results["bbc"].pop("_records")) if results["bbc"] else None
    if results["bbc_short"]:
        results["bbc_short"].pop("_records")
    results["peak_rss_mib"] = peak_rss_mib()
    seeds = (
        sorted((base.parent / "seeds").glob(SEED_GLOB))
        if root
        else sorted(seeds_dir().glob(SEED_GLOB))
    )
    results["seed"] = evaluate_seed(seeds[0], enricher) if seeds else None
    return results


def baselines_from(results: dict[str, Any]) -> dict[str, Any]:
    """The part of the results recorded in ``baselines.json`` (package data)."""
    out: dict[str, Any] = {"tolerance": TOLERANCE, "acceptance": ACCEPTANCE}
    if results.get("conll"):
        c = results["conll"]
        out["conll"] = {
            "f1": c["f1"], "precision": c["precision"], "recall": c["recall"],
            "per_type": {k: v["f1"] for k, v in c["per_type"].items()},
            "data_sha256": c["data_sha256"],
        }  # fmt: skip
    if results.get("bbc"):
        b = results["bbc"]
        out["bbc"] = {
            "accuracy": b["accuracy"],
            "macro_f1": b["macro_f1"],
            "words_per_second": b["words_per_second"],
            "data_sha256": b["data_sha256"],
        }
    if results.get("bbc_short"):
        b = results["bbc_short"]
        out["bbc_short"] = {"accuracy": b["accuracy"], "macro_f1": b["macro_f1"]}
    if results.get("facets"):
        out["facets"] = {"wrong_in_top": results["facets"]["wrong_total"], "top": FACET_TOP}
    out["recogniser"] = results.get("recogniser")
    out["peak_rss_mib"] = results.get("peak_rss_mib")
    if results.get("seed"):
        out["seed"] = {
            "passed": results["seed"]["passed"],
            "data_sha256": results["seed"]["data_sha256"],
        }
    return out


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of the scores."""
    rows = [("metric", "score", "gate")]
    if results.get("conll"):
        c = results["conll"]
        rows.append(("conll micro P", f"{c['precision']:.4f}", ""))
        rows.append(("conll micro R", f"{c['recall']:.4f}", ""))
        rows.append(("conll micro F1", f"{c['f1']:.4f}", f">= {ACCEPTANCE['conll_f1']}"))
        for kind, v in c["per_type"].items():
            rows.append(
                (
                    f"  {kind} F1 (P/R)",
                    f"{v['f1']:.4f}",
                    f"({v['precision']:.3f}/{v['recall']:.3f})",
                )
            )
    else:
        rows.append(("conll", "absent", ""))
    if results.get("bbc"):
        b = results["bbc"]
        rows.append(
            ("bbc top-1 accuracy", f"{b['accuracy']:.4f}", f">= {ACCEPTANCE['bbc_accuracy']}")
        )
        rows.append(("bbc macro-F1", f"{b['macro_f1']:.4f}", ""))
        for cat, f1 in b["f1_per_class"].items():
            rows.append((f"  {cat} F1", f"{f1:.4f}", ""))
        rows.append(("bbc words/s (enrich)", f"{b['words_per_second']}", f"{b['seconds']} s"))
    else:
        rows.append(("bbc", "absent", ""))
    if results.get("bbc_short"):
        b = results["bbc_short"]
        gate = f">= {ACCEPTANCE['bbc_short_accuracy']}"
        rows.append(("bbc short top-1", f"{b['accuracy']:.4f}", gate))
        rows.append(("bbc short macro-F1", f"{b['macro_f1']:.4f}", ""))
    if results.get("facets"):
        f = results["facets"]
        for facet in ("person", "organization", "location"):
            wrong = [r["value"] for r in f[facet]["top"] if r["wrong"]]
            rows.append((f"{facet} top-{FACET_TOP} wrong", str(len(wrong)), ", ".join(wrong)))
    if results.get("peak_rss_mib") is not None:
        rows.append(("peak RSS MiB", f"{results['peak_rss_mib']}", f"< {MAX_RSS_MIB}"))
    rows.append(("recogniser", str(results.get("recogniser")), ""))
    if results.get("seed"):
        s = results["seed"]
        rows.append(("seed article", "pass" if s["passed"] else "FAIL", "; ".join(s["problems"])))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>8}  {c}" for a, b, c in rows)


def format_facets(facets: dict[str, Any]) -> str:
    """The top values of each entity facet, wrong ones marked with ``x`` and the reason."""
    lines = []
    for facet in ("person", "organization", "location"):
        lines.append(f"\n{facet} facet, top {FACET_TOP} over bbc-dev (x = wrong):")
        for row in facets[facet]["top"]:
            mark = f"x  ({row['wrong']})" if row["wrong"] else ""
            lines.append(f"  {row['count']:>5}  {row['value']:<32} {mark}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``make eval``: print the scores; ``--update-baselines`` records them."""
    parser = argparse.ArgumentParser(prog="python -m workshop.evaluation", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--update-baselines", action="store_true", help="rewrite baselines.json")
    parser.add_argument("--eval-dir", type=Path, help="evaluation data (default NEWSWIRE_EVAL_DIR)")
    parser.add_argument("--errors", type=Path, help="write CoNLL sentence errors as JSONL here")
    args = parser.parse_args(argv)
    if not structlog.is_configured():
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(30),
        )
    root = args.eval_dir.resolve() if args.eval_dir else eval_dir()
    if not root.is_dir():
        print(f"evaluation data not found at {root} (set NEWSWIRE_EVAL_DIR)", file=sys.stderr)
        return 2
    results = run_all(root)
    errors = results["conll"].pop("_errors", []) if results.get("conll") else []
    if args.errors:
        with args.errors.open("w", encoding="utf-8") as fh:
            for err in errors:
                fh.write(json.dumps(err, ensure_ascii=False) + "\n")
    if args.update_baselines:
        target = baselines_path()
        target.write_text(json.dumps(baselines_from(results), indent=2) + "\n", "utf-8")
        print(f"baselines written to {target}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        print(format_table(results))
        if results.get("facets"):
            print(format_facets(results["facets"]))
    return 0

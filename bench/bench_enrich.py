"""Enrichment throughput against plain spaCy NER, and peak memory (``make bench``).

Runs, in one process and over the same bbc-dev texts:
1. plain spaCy ``nlp.pipe`` with only the NER component (the floor of the cost);
2. the ``newswire enrich --jsonl`` code path (:func:`pipeline.enrich.jsonl.enrich_jsonl`).
Prints words/s for both, their ratio (target >= 0.75) and the peak RSS (target < 1.5 GB).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pipeline.enrich.enricher import Enricher, count_words
from pipeline.enrich.jsonl import enrich_jsonl
from pipeline.enrich.nlp import get_nlp
from workshop.evaluation import BBC_DIR, eval_dir, read_bbc

RATIO_TARGET = 0.75
RSS_TARGET_MB = 1536.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="only the first N articles")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    root = (args.eval_dir or eval_dir()) / BBC_DIR
    if not root.is_dir():
        print(f"bbc-dev not found at {root}; set NEWSWIRE_EVAL_DIR", file=sys.stderr)
        return 2
    items = read_bbc(root)
    if args.limit:
        items = items[: args.limit]
    records = [{"id": f"{c}/{n}", "title": t, "body": b} for c, n, t, b in items]
    lines = [json.dumps(r) for r in records]
    texts = [f"{r['title']}\n\n{r['body']}" for r in records]
    words = sum(count_words(r["title"]) + count_words(r["body"]) for r in records)

    nlp = get_nlp()  # tok2vec + ner only
    enricher = Enricher(batch_size=args.batch_size)
    enrich_jsonl(lines[:4], io.StringIO(), enricher=enricher)  # warm-up: detector, tables
    list(nlp.pipe(texts[:4]))

    started = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=args.batch_size):
        pass
    ner_seconds = time.perf_counter() - started

    started = time.perf_counter()
    enrich_jsonl(lines, io.StringIO(), batch_size=args.batch_size, enricher=enricher)
    enrich_seconds = time.perf_counter() - started

    ner_wps = words / ner_seconds
    enrich_wps = words / enrich_seconds
    ratio = enrich_wps / ner_wps
    rss = peak_rss_mb()
    result = {
        "articles": len(records),
        "words": words,
        "spacy_ner_words_per_s": round(ner_wps),
        "enrich_jsonl_words_per_s": round(enrich_wps),
        "ratio": round(ratio, 3),
        "ratio_target": RATIO_TARGET,
        "peak_rss_mb": round(rss, 1),
        "peak_rss_target_mb": RSS_TARGET_MB,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        rows = [
            ("articles", f"{len(records)}", ""),
            ("words", f"{words}", ""),
            ("spaCy nlp.pipe (NER only)", f"{ner_wps:,.0f} words/s", f"{ner_seconds:.1f} s"),
            ("enrich --jsonl path", f"{enrich_wps:,.0f} words/s", f"{enrich_seconds:.1f} s"),
            (
                "ratio",
                f"{ratio:.3f}",
                f"target >= {RATIO_TARGET} {'ok' if ratio >= RATIO_TARGET else 'MISSED'}",
            ),
            (
                "peak RSS",
                f"{rss:,.0f} MiB",
                f"target < {RSS_TARGET_MB:.0f} {'ok' if rss < RSS_TARGET_MB else 'MISSED'}",
            ),
        ]
        for name, value, note in rows:
            print(f"{name:<28} {value:>18}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

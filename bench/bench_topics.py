"""Topic scoring throughput with and without the Snowball-stem pass (``make bench``).

Runs, in one process and over the same bbc-dev texts (whole articles, no entity
recognition), :func:`pipeline.enrich.topics.gather_evidence` + scoring with the light fold
only (``blend=0``) and as shipped (light fold plus the stemmed pass). Prints words/s for
both and their ratio; the topic stage is a small share of ``enrich`` (the recogniser
dominates), so this ratio bounds what the stemmed pass costs there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from pipeline.enrich.enricher import count_words
from pipeline.enrich.topics import (
    STEM_BLEND,
    gather_evidence,
    load_lexicon,
    scores_from_evidence,
    strong_stem,
)
from workshop.evaluation import BBC_DIR, eval_dir, read_bbc


def words_per_second(fields: list[dict[str, str]], blend: float, rounds: int) -> float:
    """Best of ``rounds`` passes over ``fields`` (the stem cache warm after the first)."""
    lexicon = load_lexicon()
    words = sum(count_words(text) for item in fields for text in item.values())
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in fields:
            scores_from_evidence(gather_evidence(item, lexicon, blend=blend))
        best = min(best, time.perf_counter() - started)
    return words / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval-dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    root = (args.eval_dir or eval_dir()) / BBC_DIR
    if not root.is_dir():
        print(f"bbc-dev not found at {root}; set NEWSWIRE_EVAL_DIR", file=sys.stderr)
        return 2
    fields = [{"title": t, "body": b} for _, _, t, b in read_bbc(root)]
    light = words_per_second(fields, 0.0, args.rounds)
    shipped = words_per_second(fields, STEM_BLEND, args.rounds)
    result = {
        "articles": len(fields),
        "light_words_per_second": round(light),
        "shipped_words_per_second": round(shipped),
        "ratio": round(shipped / light, 3),
        "stem_cache": strong_stem.cache_info().currsize,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"topics, light fold only:   {result['light_words_per_second']:>9} words/s")
        print(f"topics, as shipped:        {result['shipped_words_per_second']:>9} words/s")
        print(f"ratio shipped / light:     {result['ratio']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

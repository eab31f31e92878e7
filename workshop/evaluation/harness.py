"""The evaluations of the enrichment stage (``make eval``; gates in ``tests/eval``).

- CoNLL-2003 dev: entity precision / recall / F1 for PER, ORG, LOC (exact span and type),
  every sentence sent as one JSONL ``body`` through :func:`enrich_jsonl` - the code path of
  ``newswire enrich --jsonl`` - and mention offsets mapped back onto the tokens.
- bbc-dev: top-1 IPTC topic accuracy and macro-F1 with the mapping of the data's README,
  on whole articles and on short items (title + first sentence, what most feeds send);
  throughput (words/s through ``enrich --jsonl``) and this process's peak RSS (the
  recogniser's server counted apart).
- Facet precision: the top 20 values of each entity facet over bbc-dev, with the values
  that are type errors by the rule of :func:`facet_value_error` marked and counted.
- The seed article: canonical entities and topics against a hand-written expectation.

The recogniser is ``NEWSWIRE_NER_BACKEND`` (default CoreNLP): ``NEWSWIRE_CORENLP_URL``, or a
CoreNLP server already running on ``NEWSWIRE_CORENLP_PORT``, or one started for the run.

``python -m workshop.evaluation [--json] [--update-baselines] [--eval-dir DIR]``
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.enrich.enricher import Enricher, count_words
from pipeline.enrich.jsonl import enrich_jsonl

REPO_ROOT = Path(__file__).resolve().parents[2]
CONLL_FILE = Path("conll2003") / "dev.iob2.txt"
BBC_DIR = Path("bbc-dev")
SEED_GLOB = "*.txt"

ACCEPTANCE = {
    "conll_f1": 0.90,
    "conll_org_f1": 0.85,
    "bbc_accuracy": 0.93,
    "bbc_short_accuracy": 0.85,
}
#: Peak RSS of the process running ``enrich --jsonl`` (the recogniser's server apart).
MAX_RSS_MIB = 1024
FACET_TOP = 20
TOLERANCE = 0.005
CONLL_TYPES = {"person": "PER", "organization": "ORG", "location": "LOC"}
BBC_TO_IPTC = {
    "business": "medtop:04000000",
    "entertainment": "medtop:01000000",
    "politics": "medtop:11000000",
    "sport": "medtop:15000000",
    "tech": "medtop:13000000",
}


def eval_dir() -> Path:
    """``NEWSWIRE_EVAL_DIR`` or ``../shared/eval`` relative to the repository root."""
    configured = os.environ.get("NEWSWIRE_EVAL_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    try:
        from pipeline.settings import get_settings

        path = get_settings().eval_dir
    except Exception:  # settings errors must not hide the evaluation data
        path = Path("../shared/eval")
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def seeds_dir() -> Path:
    """The seed articles: ``<eval_dir>/../seeds`` or the repository's ``seeds/``."""
    shared = eval_dir().parent / "seeds"
    return shared if shared.is_dir() else REPO_ROOT / "seeds"


def hash_files(paths: Iterable[Path]) -> str:
    """SHA-256 over the files' relative names and bytes (order-independent)."""
    digest = hashlib.sha256()
    items = sorted(paths)
    root = Path(os.path.commonpath([str(p) for p in items])) if items else Path()
    for path in items:
        digest.update(str(path.relative_to(root) if len(items) > 1 else path.name).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- CoNLL ----


@dataclass(frozen=True, slots=True)
class PRF:
    """Precision, recall, F1 and the counts behind them."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    """Sentences as (tokens, IOB2 tags) from the 4-column CoNLL-2003 file."""
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for line in path.read_text("utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def iob_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, first token, last token + 1) spans of IOB2 (or IOB1) tags, conlleval-style."""
    spans: set[tuple[str, int, int]] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        inside = prefix == "I" and label == kind and start >= 0
        if not inside and start >= 0:
            spans.add((kind, start, i))
            start, kind = -1, ""
        if prefix in ("B", "I") and not inside:
            start, kind = i, label
    return spans


def token_offsets(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character offsets of tokens joined by single spaces."""
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return offsets


def mentions_to_spans(
    mentions: Iterable[dict[str, Any]], offsets: Sequence[tuple[int, int]]
) -> set[tuple[str, int, int]]:
    """Map character-offset mentions (field ``body``) onto token spans."""
    spans: set[tuple[str, int, int]] = set()
    for m in mentions:
        kind = CONLL_TYPES.get(m["type"])
        if kind is None or m["field"] != "body":
            continue
        covered = [i for i, (s, e) in enumerate(offsets) if s < m["end"] and e > m["start"]]
        if covered:
            spans.add((kind, covered[0], covered[-1] + 1))
    return spans


def evaluate_conll(path: Path, enricher: Enricher | None = None) -> dict[str, Any]:
    """Entity P/R/F1 (micro and per type) through the ``enrich --jsonl`` code path."""
    sentences = read_conll(path)
    lines = [
        json.dumps({"id": str(i), "body": " ".join(toks)}) for i, (toks, _) in enumerate(sentences)
    ]
    out = io.StringIO()
    started = time.perf_counter()
    enrich_jsonl(lines, out, batch_size=64, enricher=enricher)
    seconds = time.perf_counter() - started
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("PER", "ORG", "LOC")}
    errors: list[dict[str, Any]] = []
    for (tokens, tags), raw in zip(sentences, out.getvalue().splitlines(), strict=True):
        record = json.loads(raw)
        gold = {s for s in iob_spans(tags) if s[0] in counts}
        pred = mentions_to_spans(record.get("mentions", []), token_offsets(tokens))
        for kind, c in counts.items():
            g = {s for s in gold if s[0] == kind}
            p = {s for s in pred if s[0] == kind}
            c["tp"] += len(g & p)
            c["fp"] += len(p - g)
            c["fn"] += len(g - p)
        if gold != pred and len(errors) < 100_000:
            errors.append(
                {
                    "text": " ".join(tokens),
                    "missed": sorted((k, " ".join(tokens[s:e])) for k, s, e in gold - pred),
                    "spurious": sorted((k, " ".join(tokens[s:e])) for k, s, e in pred - gold),
                }
            )
    per_type = {k: PRF(c["tp"], c["fp"], c["fn"]) for k, c in counts.items()}
    micro = PRF(*(sum(getattr(p, a) for p in per_type.values()) for a in ("tp", "fp", "fn")))
    return {
        "sentences": len(sentences),
        "precision": round(micro.precision, 4),
        "recall": round(micro.recall, 4),
        "f1": round(micro.f1, 4),
        "per_type": {
            k: {
                "precision": round(p.precision, 4),
                "recall": round(p.recall, 4),
                "f1": round(p.f1, 4),
            }
            for k, p in per_type.items()
        },
        "seconds": round(seconds, 1),
        "data_sha256": hash_files([path]),
        "_errors": errors,
    }


# ---------------------------------------------------------------------------- BBC -----


def read_text_file(path: Path) -> str:
    """UTF-8, or Latin-1 for the files that are not."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_bbc(root: Path) -> list[tuple[str, str, str, str]]:
    """(category, file name, headline, body) for every article under ``root``."""
    items = []
    for category in sorted(BBC_TO_IPTC):
        for path in sorted((root / category).glob("*.txt")):
            text = read_text_file(path).strip()
            title, _, body = text.partition("\n")
            items.append((category, path.name, title.strip(), body.strip()))
    return items


_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"'”’]?\s+(?=[\"'“‘]?[A-Z0-9])")


def first_sentence(body: str) -> str:
    """The first sentence of the first paragraph (a feed item's one-line description)."""
    paragraph = body.strip().split("\n", 1)[0].strip()
    return _SENTENCE_END_RE.split(paragraph, 1)[0].strip()


def evaluate_bbc(
    root: Path, enricher: Enricher | None = None, *, short: bool = False
) -> dict[str, Any]:
    """Top-1 accuracy and macro-F1 of IPTC topics against the mapped BBC categories.

    ``short``: each article as a feed item, its title and the first sentence only."""
    items = read_bbc(root)
    lines = [
        json.dumps(
            {"id": f"{cat}/{name}", "title": title, "body": first_sentence(body) if short else body}
        )
        for cat, name, title, body in items
    ]
    words = sum(
        count_words(title) + count_words(first_sentence(body) if short else body)
        for _, _, title, body in items
    )
    out = io.StringIO()
    started = time.perf_counter()
    enrich_jsonl(lines, out, batch_size=32, enricher=enricher)
    seconds = time.perf_counter() - started
    gold_codes, pred_codes = [], []
    confusion: Counter[tuple[str, str]] = Counter()
    records: list[dict[str, Any]] = []
    for (cat, _, _, _), raw in zip(items, out.getvalue().splitlines(), strict=True):
        record = json.loads(raw)
        records.append(record)
        topics = record.get("topics") or []
        pred = topics[0]["code"] if topics else "none"
        gold_codes.append(BBC_TO_IPTC[cat])
        pred_codes.append(pred)
        confusion[(cat, pred)] += 1
    correct = sum(g == p for g, p in zip(gold_codes, pred_codes, strict=True))
    f1s = {}
    for cat, code in BBC_TO_IPTC.items():
        tp = sum(g == code and p == code for g, p in zip(gold_codes, pred_codes, strict=True))
        fp = sum(g != code and p == code for g, p in zip(gold_codes, pred_codes, strict=True))
        fn = sum(g == code and p != code for g, p in zip(gold_codes, pred_codes, strict=True))
        f1s[cat] = round(PRF(tp, fp, fn).f1, 4)
    files = [p for cat in BBC_TO_IPTC for p in (root / cat).glob("*.txt")]
    return {
        "articles": len(items),
        "accuracy": round(correct / len(items), 4) if items else 0.0,
        "macro_f1": round(sum(f1s.values()) / len(f1s), 4),
        "f1_per_class": f1s,
        "confusion": {f"{g}->{p}": n for (g, p), n in sorted(confusion.items())},
        "seconds": round(seconds, 1),
        "words": words,
        "words_per_second": round(words / seconds) if seconds else 0,
        "data_sha256": hash_files(files),
        "_records": records,
    }


# --------------------------------------------------------------------------- seed -----

SEED_EXPECTED: dict[str, Any] = {
    "person": ["John Kerry", "Sergei Lavrov", "Vladimir Putin", "Bashar al-Assad",
               "Staffan de Mistura"],
    "location_once": ["United States"],
    "organization_once": ["Islamic State"],
    "topics_in_top3": ["medtop:11000000", "medtop:16000000"],
    # spellings that must have been folded into the canonical names above
    "forbidden": ["Kerry", "Putin", "Assad", "Lavrov", "US", "U.S.", "America", "IS",
                  "Islamic State group", "Mistura", "State"],
}  # fmt: skip


def parse_seed(text: str) -> dict[str, str]:
    """Headline, blank, headline, standfirst, reading time, date, blank, body."""
    blocks = text.replace("\r\n", "\n").split("\n\n", 2)
    title = blocks[0].strip()
    head = blocks[1].split("\n") if len(blocks) > 1 else []
    summary = head[1].strip() if len(head) > 1 else ""
    body = blocks[2].strip() if len(blocks) > 2 else ""
    return {"title": title, "summary": summary, "body": body}


def evaluate_seed(path: Path, enricher: Enricher | None = None) -> dict[str, Any]:
    """The seed article's canonical entities and topics against :data:`SEED_EXPECTED`."""
    fields = parse_seed(read_text_file(path))
    out = io.StringIO()
    enrich_jsonl([json.dumps({"id": path.stem, **fields})], out, enricher=enricher)
    record = json.loads(out.getvalue())
    ents = record["entities"]
    problems: list[str] = []
    for name in SEED_EXPECTED["person"]:
        n = sum(name == p for p in ents["person"])
        if n != 1:
            problems.append(f"person {name!r} appears {n} times")
        for other in ("organization", "location", "misc"):
            if name in ents[other]:
                problems.append(f"{name!r} also listed as {other}")
    for name in SEED_EXPECTED["location_once"]:
        if ents["location"].count(name) != 1:
            problems.append(f"location {name!r} not exactly once")
    for name in SEED_EXPECTED["organization_once"]:
        if ents["organization"].count(name) != 1:
            problems.append(f"organization {name!r} not exactly once")
    all_names = [n for names in ents.values() for n in names]
    for bad in SEED_EXPECTED["forbidden"]:
        if bad in all_names:
            problems.append(f"non-canonical name {bad!r} in entities")
    top3 = [t["code"] for t in record["topics"][:3]]
    for code in SEED_EXPECTED["topics_in_top3"]:
        if code not in top3:
            problems.append(f"topic {code} not in top 3 {top3}")
    return {
        "passed": not problems,
        "problems": problems,
        "entities": ents,
        "topics": [(t["code"], t["label"], t["score"]) for t in record["topics"]],
        "data_sha256": hash_files([path]),
    }

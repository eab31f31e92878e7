"""Quality evaluation of the enrichment stage (``make eval``, gates in ``tests/eval``).

Not part of the runtime package: :mod:`workshop.evaluation.harness` scores entities, topics
and the seed article, :mod:`~workshop.evaluation.facets` the facet values,
:mod:`~workshop.evaluation.report` runs them all and keeps the recorded baselines.
"""

from workshop.evaluation.facets import FACET_TOP, facet_precision, facet_value_error
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
    first_sentence,
    read_bbc,
    seeds_dir,
)
from workshop.evaluation.report import (
    baselines_from,
    main,
    peak_rss_mib,
    read_baselines,
    recogniser_for_eval,
    run_all,
)

__all__ = [
    "ACCEPTANCE",
    "BBC_DIR",
    "CONLL_FILE",
    "FACET_TOP",
    "MAX_RSS_MIB",
    "SEED_GLOB",
    "TOLERANCE",
    "baselines_from",
    "eval_dir",
    "evaluate_bbc",
    "evaluate_conll",
    "evaluate_seed",
    "facet_precision",
    "facet_value_error",
    "first_sentence",
    "main",
    "peak_rss_mib",
    "read_baselines",
    "read_bbc",
    "recogniser_for_eval",
    "run_all",
    "seeds_dir",
]

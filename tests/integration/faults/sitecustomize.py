"""Fault injection for the worker tests: imported at start-up of a child Python process
whose PYTHONPATH starts with this folder. Does nothing unless NEWSWIRE_TEST_FAULT is set."""

import os
from pathlib import Path

if os.environ.get("NEWSWIRE_TEST_FAULT") == "enrich-once":
    import pipeline.enrich.enricher as _enricher

    _marker = Path(os.environ["NEWSWIRE_TEST_FAULT_MARKER"])
    _original = _enricher.Enricher.enrich

    def _failing_once(self, articles):  # type: ignore[no-untyped-def]
        if not _marker.exists():
            _marker.touch()
            raise RuntimeError("injected enrichment fault")
        return _original(self, articles)

    _enricher.Enricher.enrich = _failing_once  # type: ignore[method-assign]

if os.environ.get("NEWSWIRE_TEST_FAULT") == "enrich-poison":
    import pipeline.enrich.enricher as _enricher

    _original_enrich = _enricher.Enricher.enrich

    def _poisoned(self, articles):  # type: ignore[no-untyped-def]
        if any("POISON" in (article.title or "") for article in articles):
            raise ValueError("injected poison record")
        return _original_enrich(self, articles)

    _enricher.Enricher.enrich = _poisoned  # type: ignore[method-assign]

if os.environ.get("NEWSWIRE_TEST_FAULT") == "enrich-exit":
    import pipeline.enrich.enricher as _enricher

    _original_enrich_exit = _enricher.Enricher.enrich

    def _killing(self, articles):  # type: ignore[no-untyped-def]
        # The whole process ends at once, as a native crash or the OOM killer would end
        # it: no exception, no finally blocks, no offsets committed.
        if any("KILLER" in (article.title or "") for article in articles):
            os._exit(86)
        return _original_enrich_exit(self, articles)

    _enricher.Enricher.enrich = _killing  # type: ignore[method-assign]

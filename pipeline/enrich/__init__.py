"""Enrichment stage: language, entities (canonical), IPTC topics, keywords, story clusters.

Public entry points: :class:`pipeline.enrich.enricher.Enricher`,
:func:`pipeline.enrich.jsonl.enrich_jsonl`, :mod:`pipeline.enrich.dedup` and
:func:`pipeline.enrich.topics.explain_topics`.
"""

"""Newswire's workshop: what never runs in production.

The local Kafka/Elasticsearch/CoreNLP launcher (:mod:`workshop.stack`), ``newswire run``
(:mod:`workshop.run`), the enrichment quality harness (:mod:`workshop.evaluation`), the
builders of ``pipeline/data`` (:mod:`workshop.builders`) and the layering checks
(:mod:`workshop.checks`). Runtime code never imports it; only ``pipeline.cli.local`` does,
lazily, for the commands that drive a local stack.
"""

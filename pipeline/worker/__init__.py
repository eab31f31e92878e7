"""The worker: ``app`` (Faust wiring), ``batches`` (the agents' work, composed of
``enrich_stage``, ``story_clusters``, ``sink_stage``, ``output``, ``decode`` and
``stopping``), ``dlq`` (the dead-letter topic) and ``failstop`` (exiting on an
unexpected error)."""

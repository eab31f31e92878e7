"""Sinks: where enriched articles go (the search index), and how they get there."""

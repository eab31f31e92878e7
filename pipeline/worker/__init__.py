"""The worker: ``app`` (Faust wiring), ``batches`` (the agents' work), ``dlq`` (the
dead-letter topic) and ``failstop`` (exiting on an unexpected error)."""

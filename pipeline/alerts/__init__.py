"""Standing queries: their list of record, in-stream matching, and deliveries."""

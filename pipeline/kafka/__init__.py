"""The Kafka transport: ``client`` (connection, producer, record encoding), ``topics``
(creating topics, one replication policy) and ``compacted`` (reading a compacted topic
to its end)."""

"""The local stack: Apache Kafka (KRaft) and Elasticsearch 9 (or OpenSearch 2.19) resolved by
Maven, no Docker.

``LocalStack(settings, progress=print).up()`` starts the servers (idempotent), ``down()``
stops them, ``status()`` says what really runs; ``local_endpoints(settings)`` reads the
endpoints of a running stack.
"""

from __future__ import annotations

from workshop.stack.manager import LocalStack, ServiceStatus, StackStatus, local_endpoints

__all__ = ["LocalStack", "ServiceStatus", "StackStatus", "local_endpoints"]

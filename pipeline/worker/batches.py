"""The work of the worker's two agents, kept apart from Faust so tests can drive it.

:class:`Worker` composes one part per concern: ``enrich_batch`` is
:class:`~pipeline.worker.enrich_stage.EnrichStage` (raw records -> validated, capped, exact
duplicates dropped (:mod:`~pipeline.worker.story_clusters`), enriched, story cluster
assigned -> the enriched topic); ``index_batch`` is
:class:`~pipeline.worker.sink_stage.SinkStage` (enriched records -> the search index). Both
write through one :class:`~pipeline.worker.output.KafkaOutput` (sends through a Kafka
outage); records that cannot be handled go to the DLQ (:mod:`pipeline.worker.dlq`) with the
reason, and records are read under the rolling-upgrade rule (:mod:`pipeline.worker.decode`).
Either way the batch's output is safe (acknowledged) when these return.
"""

from __future__ import annotations

import asyncio

from pipeline.settings import Settings
from pipeline.worker.decode import Values
from pipeline.worker.enrich_stage import EnrichStage
from pipeline.worker.output import KafkaOutput
from pipeline.worker.sink_stage import SinkStage


class Worker:
    """The two agents' work, kept apart from Faust so it can be driven by tests too."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.output = KafkaOutput(settings, self.stopping)
        self.enrich_stage = EnrichStage(settings, self.output, self.stopping)
        self.sink_stage = SinkStage(settings, self.output, self.stopping)

    @property
    def marks(self) -> dict[str, dict[str, float]]:
        """Wall-clock times (epoch seconds) of the last batch's steps, by stage; logged
        with the batch (``app.py``). Each agent runs one batch at a time."""
        return {"enrich": self.enrich_stage.marks, "sink": self.sink_stage.marks}

    async def start(self) -> None:
        """Connect the producer (idempotent). The search engine is not needed to enrich:
        the sink connects on its own, on its first batch (:meth:`SinkStage.start`)."""
        await self.output.start()

    def request_stop(self) -> None:
        """The worker is stopping: batches that wait (for Kafka, the search engine, the
        entity recogniser) are handed back unacknowledged instead of waiting on."""
        self.stopping.set()

    async def stop(self) -> None:
        """Flush and close connections (after the agents stopped: see ``app.py``)."""
        await self.enrich_stage.stop()
        await self.output.stop()
        await self.sink_stage.stop()

    async def enrich_batch(self, values: Values) -> int:
        """Enrich raw records and publish them; returns how many went to the enriched topic."""
        return await self.enrich_stage.run(values)

    async def index_batch(self, values: Values) -> int:
        """Index enriched records; permanent failures go to the DLQ. Returns docs acked."""
        return await self.sink_stage.run(values)

    async def copies_batch(self, values: Values) -> int:
        """Fold exact copies into their stories (the stories index)."""
        return await self.sink_stage.copies(values)


__all__ = ["Worker"]

"""The settings of the worker's recovery from records that kill its process, a part of the
one :class:`pipeline.settings.Settings` (kept apart so that module stays under its size)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WorkerRecoveryFields(BaseModel):
    """Fields of :class:`~pipeline.settings.Settings`: ``NEWSWIRE_TOPIC_INFLIGHT`` and
    ``NEWSWIRE_WORKER_CRASH_LIMIT``."""

    topic_inflight: str = Field(
        "newswire.worker.inflight",
        description="NEWSWIRE_TOPIC_INFLIGHT: compacted topic where each worker stage notes "
        "the offsets of the batch it is working on, so records in flight when the process "
        "died are counted across restarts (one small record per stage and partition).",
    )
    worker_crash_limit: int = Field(
        3,
        ge=1,
        description="NEWSWIRE_WORKER_CRASH_LIMIT: a record in flight this many times when the "
        "worker process died (killed, out of memory, a native crash: no exception to catch) "
        "goes to the DLQ with that reason; after the first death, suspect records are "
        "handled one at a time, so the count names the record.",
    )

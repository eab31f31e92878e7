"""Only what an agent handled is acknowledged: Faust's own acknowledgements are refused.

Faust acknowledges some messages by itself. A message its stream reads while flow control
is off (during a rebalance, at a stop) or that was fetched before the latest rebalance is
*skipped and acknowledged*, so that the lag does not grow. Its next commit then moves past
records no agent handled whenever they follow the committed offset directly, or the
partition has none yet; if the partition then changes owner or the worker stops, they are
lost. (Read from Faust's code while chasing records lost at rebalances; no refusal has been
counted in the test runs so far, and those losses have another cause, see
docs/architecture.md.)

Refusing those acknowledgements loses nothing: after a rebalance every assigned partition
is read again from its committed offset, and after a stop the next owner reads it. The
agents mark each message they handled (:meth:`AckGuard.ack`) before acknowledging it.
"""

from __future__ import annotations

from typing import Any

from pipeline import metrics


class AckGuard:
    """Wraps a Faust consumer's ``ack``: only messages marked handled get through."""

    def __init__(self) -> None:
        self._handled: set[tuple[Any, int]] = set()
        self.refused = 0

    def install(self, consumer: Any) -> None:
        """Wrap ``consumer.ack`` once (the app's consumer lives as long as the app)."""
        if getattr(consumer, "_newswire_ack_guard", None) is self:
            return
        ack = consumer.ack

        def guarded(message: Any) -> bool:
            key = (message.tp, message.offset)
            if key not in self._handled:
                self.refused += 1
                metrics.WORKER_ACKS_REFUSED.inc()
                return False
            self._handled.discard(key)
            return bool(ack(message))

        consumer.ack = guarded
        consumer._newswire_ack_guard = self

    async def ack(self, stream: Any, event: Any) -> None:
        """Acknowledge ``event``, which an agent handled (its output is safe)."""
        message = event.message
        key = (message.tp, message.offset)
        self._handled.add(key)
        try:
            await stream.ack(event)
        finally:
            self._handled.discard(key)  # acknowledged, or already acknowledged before


__all__ = ["AckGuard"]

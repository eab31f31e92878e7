"""Waiting between tries without holding up a stop: the worker's retry loops (Kafka
output, search engine, entity recogniser) wait here, and a stop request ends the wait
at once so the waiting batch is handed back."""

from __future__ import annotations

import asyncio


async def stop_requested_within(stopping: asyncio.Event, delay: float) -> bool:
    """Wait ``delay`` seconds between tries; True at once if ``stopping`` is set
    meanwhile (the waiting batch is then handed back)."""
    try:
        await asyncio.wait_for(stopping.wait(), delay)
    except TimeoutError:
        return False
    return True


__all__ = ["stop_requested_within"]

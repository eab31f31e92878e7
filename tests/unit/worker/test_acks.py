"""Only acknowledgements of messages an agent handled reach Faust's consumer (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.worker.acks import AckGuard


@dataclass
class Message:
    tp: str
    offset: int


@dataclass
class Consumer:
    """Records what Faust's consumer would count as acknowledged (and so commit)."""

    acked: list[tuple[str, int]] = field(default_factory=list)

    def ack(self, message: Message) -> bool:
        self.acked.append((message.tp, message.offset))
        return True


@dataclass
class Event:
    message: Message
    consumer: Consumer

    def ack(self) -> bool:  # Faust's Event.ack: message.ack(app.consumer) -> consumer.ack
        return self.consumer.ack(self.message)


class Stream:
    async def ack(self, event: Any) -> bool:
        return bool(event.ack())


async def test_only_handled_messages_are_acknowledged() -> None:
    consumer = Consumer()
    guard = AckGuard()
    guard.install(consumer)
    guard.install(consumer)  # a second assignment does not wrap twice
    handled = Event(Message("raw/0", 5), consumer)
    skipped = Event(Message("raw/0", 6), consumer)  # Faust's skip at a rebalance
    await guard.ack(Stream(), handled)
    assert skipped.ack() is False
    assert consumer.acked == [("raw/0", 5)]
    assert guard.refused == 1
    # The same offset read again after the rebalance and handled: acknowledged then.
    await guard.ack(Stream(), Event(Message("raw/0", 6), consumer))
    assert consumer.acked == [("raw/0", 5), ("raw/0", 6)]
    assert not guard._handled  # nothing kept once acknowledged

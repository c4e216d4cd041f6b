"""Helpers for integration tests on the real broker: capture events from a vhost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import aio_pika

from caesar_common.events import EVENTS_EXCHANGE, Envelope
from caesar_common.outbox import OutboxRelay


class EventTap:
    """A temporary queue bound to routing keys of ``caesar.events``, collecting envelopes."""

    def __init__(self, amqp_url: str, keys: Sequence[str]) -> None:
        self._url = amqp_url
        self._keys = keys
        self.received: list[Envelope] = []
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._new = asyncio.Event()

    async def __aenter__(self) -> EventTap:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        for key in self._keys:
            await queue.bind(exchange, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.received.append(Envelope.from_bytes(message.body))
                self._new.set()

        await queue.consume(on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def wait_for(self, predicate: Callable[[Envelope], bool], timeout_s: float = 15.0) -> Envelope:
        async def scan() -> Envelope:
            while True:
                for envelope in self.received:
                    if predicate(envelope):
                        return envelope
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout=timeout_s)


async def outbox_drained(relay: OutboxRelay, timeout_s: float = 5.0) -> int:
    """Pending outbox documents once the relay had time to clear what it published.

    The relay removes events just *after* the broker confirmed them, so a consumer can
    see an event a moment before its outbox is empty.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (pending := await relay.pending()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    return pending

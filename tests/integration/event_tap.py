"""Integration tests on the real broker: capture a vhost's events, wait for an outbox to drain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime

import aio_pika

from caesar_common.events import EVENTS_EXCHANGE, Envelope, JobStateChanged
from caesar_common.jobstate import JobState
from caesar_common.outbox import OutboxRelay
from tests.integration.service_support import eventually


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

    async def sync(self, publish: Callable[[Envelope], Awaitable[None]], marker: Envelope) -> None:
        """Publish ``marker`` (on a key this tap is bound to) and wait until it arrives.

        The tap's queue is FIFO and a publish returns once the broker confirmed it: every
        event confirmed before the marker is in ``received`` by then. A test asserts that
        something did *not* arrive after this, never after a sleep.
        """
        await publish(marker)
        await self.wait_for(lambda e: e.id == marker.id)


def marker(state: JobState = JobState.QUEUED) -> Envelope:
    """A state change of a job nobody knows: a marker for :meth:`EventTap.sync`.

    QUEUED (the default) is an event only the scheduler emits, so no service consumes it.
    """
    return Envelope.wrap(
        JobStateChanged(
            job_id=str(uuid.uuid4()),
            owner="marker",
            app="marker",
            attempt=1,
            state=state,
            changed_at=datetime.now(UTC),
        ),
        "test-marker",
    )


async def outbox_drained(relay: OutboxRelay, timeout_s: float = 5.0) -> int:
    """Pending outbox documents once the relay had time to clear what it published.

    The relay removes events just *after* the broker confirmed them, so a consumer can
    see an event a moment before its outbox is empty.
    """

    async def drained() -> bool:
        return not await relay.pending()

    with suppress(AssertionError):  # the caller asserts the count, and sees it
        await eventually(drained, timeout_s, what="the outbox to drain")
    return await relay.pending()

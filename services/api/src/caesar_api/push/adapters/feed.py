"""This process's own feed of every job state: the queue ``api.push.<instance>``.

The projection's queue ``api.job-states`` is shared by the replicas (each event reaches
one of them), but an SSE client may be connected to any replica, so each process also
binds a queue of its own to ``job.state.*``. It is *exclusive* and *auto-delete* (it
lives and dies with this process's connection) and *bounded* (``x-max-length`` with
``drop-head``): a process that stops reading can neither fill the broker nor, through
``reject-publish``, stall the publishers of every other queue. The api's broker user may
declare ``api.*`` queues and bind ``job.state.*`` (:mod:`caesar_common.access`).

Events lost while the broker connection was down cannot be replayed from the queue, so
a reconnect closes every stream: clients resume with ``Last-Event-ID`` from the history.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final, Protocol

from pydantic import ValidationError

from caesar_api.push.domain.resume import is_shown, live_event
from caesar_api.push.metrics import PUSH_EVENTS
from caesar_api.push.service.hub import PushHub
from caesar_common.bus import Bus
from caesar_common.events import EVENTS_EXCHANGE, Envelope, JobStateChanged, decode
from caesar_common.logging import get_logger

log = get_logger(__name__)

PUSH_BINDING: Final = "job.state.*"
FEED_INTERRUPTED: Final = "event feed interrupted"


class Delivered(Protocol):
    """What the feed needs of a delivered message (aio-pika's, through the bus's connection)."""

    body: bytes

    def ack(self) -> Awaitable[None]: ...


class Closable(Protocol):
    def close(self) -> Awaitable[None]: ...


def instance_id() -> str:
    """This process, in a queue name: host, pid and a random part (a restarted pid differs)."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def push_queue_name(instance: str) -> str:
    return f"api.push.{instance}"


def push_queue_arguments(max_length: int) -> dict[str, object]:
    return {"x-max-length": max_length, "x-overflow": "drop-head"}


class PushFeed:
    """Consumes this process's push queue into the hub."""

    def __init__(
        self,
        bus: Bus,
        hub: PushHub,
        *,
        max_length: int,
        instance: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._bus = bus
        self._hub = hub
        self._max_length = max_length
        self.queue_name = push_queue_name(instance or instance_id())
        self._clock = clock
        self._channel: Closable | None = None

    async def start(self, *, prefetch: int = 256) -> None:
        """Declare and bind the queue, and consume it (acks after the fan-out, bounded in flight)."""
        connection = self._bus.connection
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(
            self.queue_name,
            durable=False,
            exclusive=True,
            auto_delete=True,
            arguments=push_queue_arguments(self._max_length),
        )
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        await queue.bind(exchange, routing_key=PUSH_BINDING)
        await queue.consume(self._on_message)
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._channel = channel
        log.info("push feed consuming", queue=self.queue_name)

    async def stop(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._bus.connection.reconnect_callbacks.discard(self._on_reconnect)
            await channel.close()

    async def _on_message(self, message: Delivered) -> None:
        try:
            self.handle(message.body)
        finally:
            await message.ack()

    def handle(self, body: bytes) -> None:
        """Hand one delivered event to the hub (anything but a shown job state is ignored)."""
        try:
            event = decode(Envelope.from_bytes(body))
        except (ValidationError, ValueError, KeyError) as exc:
            log.warning("undecodable event ignored by the push feed", error=str(exc)[:200])
            return
        if not isinstance(event, JobStateChanged) or not is_shown(event):
            return
        PUSH_EVENTS.inc()
        self._hub.publish(live_event(event, self._clock()))

    def _on_reconnect(self, *_: object) -> None:
        log.warning("push feed reconnected; open streams closed so clients resume from the history")
        self._hub.close_all(FEED_INTERRUPTED)

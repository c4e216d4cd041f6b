"""The one RabbitMQ client every service uses (aio-pika).

Topology: a durable topic exchange ``caesar.events`` for events, the default exchange
for commands to a runner pool queue, and ``caesar.dlx`` where each queue dead-letters
to its own ``<queue>.dlq`` once a message has been delivered ``delivery_limit`` times.
Every service queue is a quorum queue, so a delivery limit is enforced by the broker and a
poison message cannot loop forever (RabbitMQ 3.10 delivers it ``delivery_limit + 1`` times
before dead-lettering it).

Publishing waits for the broker's confirm. Consuming acks only after the handler
returned (i.e. after the handler's own write), retries a failing handler in-process
with backoff (a database outage must not burn through the delivery limit), and rejects
undecodable messages straight to the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind
from prometheus_client import Counter
from pydantic import ValidationError

from caesar_common.events import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, Envelope
from caesar_common.logging import get_logger
from caesar_common.telemetry import context_from_carrier

log = get_logger(__name__)
_tracer = trace.get_tracer(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
BatchHandler = Callable[[Sequence[Envelope]], Awaitable[None]]
"""Handles several envelopes at once (in delivery order) with a few bulk writes."""

EVENTS_PUBLISHED = Counter(
    "caesar_events_published_total",
    "Events and commands published with a broker confirm",
    ["routing_key"],
)
MESSAGES_CONSUMED = Counter(
    "caesar_messages_consumed_total",
    "Messages consumed, by queue and outcome",
    ["queue", "outcome"],
)


REASON_HEADER = "x-caesar-reason"
"""Why a handler refused a message (:class:`Rejected`), on its copy in the dead-letter queue."""


class Rejected(Exception):
    """Raised by a handler for a message that must never be handled (a forged command).

    Not retried: the message goes to its queue's dead-letter queue at once, with the
    reason in the ``x-caesar-reason`` header, where an operator (``deadletters list``)
    sees why.
    """


def resent(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a delivered message (body and properties) with ``headers``:
    what is published when a message is moved between queues (dead-lettered, replayed)."""
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        app_id=message.app_id,
        timestamp=message.timestamp,
    )


def _span_context(envelope: Envelope) -> SpanContext:
    """The span an envelope's trace context names (invalid if it carries none)."""
    return trace.get_current_span(context_from_carrier(envelope.trace_carrier())).get_span_context()


def runner_pool_queue(pool: str) -> str:
    """Name of the command queue of an executor pool (``runner.local``, ``runner.slurm``)."""
    return f"runner.{pool}"


@dataclass
class QueueSpec:
    """A service-owned durable quorum queue and the routing keys bound to it."""

    name: str
    bindings: Sequence[str] = ()
    delivery_limit: int = 5
    exchange: str = EVENTS_EXCHANGE
    arguments: dict[str, Any] = field(default_factory=dict)

    def declare_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.name,
            **self.arguments,
        }


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


class Subscription:
    """A running consumer that can be paused and resumed (a full runner pauses)."""

    def __init__(
        self,
        channel: AbstractChannel,
        queue: AbstractQueue,
        callback: Callable[[AbstractIncomingMessage], Awaitable[None]],
    ) -> None:
        self.channel = channel
        self.queue = queue
        self._callback = callback
        self._tag: str | None = None

    @property
    def active(self) -> bool:
        return self._tag is not None

    async def set_prefetch(self, prefetch: int) -> None:
        await self.channel.set_qos(prefetch_count=max(1, prefetch))

    async def resume(self) -> None:
        if self._tag is None:
            self._tag = await self.queue.consume(self._callback)

    async def pause(self) -> None:
        if self._tag is not None:
            tag, self._tag = self._tag, None
            # The channel may already be gone (broker restart); nothing to cancel then.
            with suppress(Exception):
                await self.queue.cancel(tag)


class Bus:
    """Connection, topology, confirmed publishing and safe consuming."""

    def __init__(
        self, url: str, service: str, *, handler_retries: int = 6, publish_timeout_s: float = 30.0
    ) -> None:
        self._url = url
        # A confirm that never comes (a channel half-closed mid-publish) must not hang the
        # publisher forever: the outbox relay skips a document whose drain is in progress.
        self._publish_timeout_s = publish_timeout_s
        self._service = service
        self._handler_retries = handler_retries
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._subscriptions: list[Subscription] = []
        self._stopping = False
        self._in_hand = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._subject_locks = KeyedLocks()
        self._handler_tasks: set[asyncio.Task[None]] = set()

    @property
    def service(self) -> str:
        return self._service

    @property
    def connection(self) -> AbstractRobustConnection:
        """The broker connection (for tools such as the dead-letter inspector)."""
        if self._connection is None:
            raise RuntimeError("bus is not connected")
        return self._connection

    @property
    def is_connected(self) -> bool:
        """True only while a link to the broker is up.

        A robust connection is not "closed" while it reconnects, so ``is_closed`` alone
        says nothing about an outage; its ``connected`` event is cleared when the link
        drops and set again once it is restored. Callers that judge others by what
        arrives over the broker (the monitor's watchdog) rely on this being exact.
        """
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def connect(self, *, wait_s: float = 300.0) -> None:
        """Connect (waiting for the broker to come up) and declare the shared exchanges."""
        delay = 0.5
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            try:
                # Reconnect every 2 s (not aio-pika's 5): after a broker restart, heartbeats
                # must resume well within the monitor's runner timeout.
                self._connection = await aio_pika.connect_robust(self._url, timeout=10, reconnect_interval=2)
                break
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("broker not reachable, retrying", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        # The exchanges belong to the broker's setup (caesar_common.access), not to any
        # service: declared passively, so no service needs the right to delete them.
        try:
            self._events = await self._publish_channel.get_exchange(EVENTS_EXCHANGE)
            await self._publish_channel.get_exchange(DEAD_LETTER_EXCHANGE)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise RuntimeError(
                f"the broker has no exchange {EVENTS_EXCHANGE} or {DEAD_LETTER_EXCHANGE}: its setup "
                "declares them (scripts/infra.sh start, or the definitions of `make secrets`)"
            ) from exc

    async def declare(self, spec: QueueSpec, channel: AbstractChannel | None = None) -> AbstractQueue:
        """Declare a queue, its bindings and its dead-letter queue (idempotent)."""
        ch = channel or self._channel()
        queue = await ch.declare_queue(spec.name, durable=True, arguments=spec.declare_arguments())
        if spec.bindings:
            exchange = await ch.get_exchange(spec.exchange)
            for key in spec.bindings:
                await queue.bind(exchange, routing_key=key)
        dlq = await ch.declare_queue(f"{spec.name}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(DEAD_LETTER_EXCHANGE, routing_key=spec.name)
        return queue

    def _channel(self) -> AbstractChannel:
        if self._publish_channel is None:
            raise RuntimeError("bus is not connected")
        return self._publish_channel

    async def publish(self, envelope: Envelope, *, to_queue: str | None = None) -> None:
        """Publish an event (or, with ``to_queue``, a command) and wait for the confirm."""
        message = aio_pika.Message(
            body=envelope.to_bytes(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.id,
            type=envelope.type,
            timestamp=envelope.time,
            app_id=envelope.source,
            headers={k: v for k, v in envelope.trace_carrier().items()},
        )
        parent = context_from_carrier(envelope.trace_carrier())
        key = to_queue or envelope.routing_key
        with _tracer.start_as_current_span(f"publish {key}", context=parent, kind=SpanKind.PRODUCER):
            if to_queue is not None:
                # mandatory: a command to a queue that does not exist yet is returned and
                # raises, so the outbox keeps it instead of the broker dropping it.
                await self._channel().default_exchange.publish(
                    message, routing_key=to_queue, mandatory=True, timeout=self._publish_timeout_s
                )
            else:
                if self._events is None:
                    raise RuntimeError("bus is not connected")
                # An event nobody has bound a queue to yet is fine to lose: not mandatory.
                await self._events.publish(
                    message, routing_key=key, mandatory=False, timeout=self._publish_timeout_s
                )
        EVENTS_PUBLISHED.labels(key).inc()

    async def consume(
        self,
        spec: QueueSpec,
        handler: Handler,
        *,
        prefetch: int = 16,
        batch: BatchHandler | None = None,
        max_batch: int = 128,
    ) -> Subscription:
        """Consume a queue on its own channel; ack after ``handler`` returns.

        With ``batch``, messages that arrive while a batch is being handled form the next
        one (up to ``max_batch``): ``batch`` handles them together, then all are acked. If
        it fails, each message of that batch goes through ``handler`` alone, with the
        usual retries, so one poison message is dead-lettered alone, not with its batch.
        """
        if self._connection is None:
            raise RuntimeError("bus is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await self.declare(spec, channel)

        if batch is None:

            async def on_message(message: AbstractIncomingMessage) -> None:
                await self._deliver(spec.name, message, handler)

        else:
            batcher = _Batcher(self, spec.name, handler, batch, max_batch)

            async def on_message(message: AbstractIncomingMessage) -> None:
                await batcher.add(message)

        subscription = Subscription(channel, queue, on_message)
        await subscription.resume()
        self._subscriptions.append(subscription)
        return subscription

    async def _deliver(self, queue: str, message: AbstractIncomingMessage, handler: Handler) -> None:
        """Run the handler to completion even if the broker connection drops meanwhile.

        aiormq runs each delivery in a task of the channel and cancels those tasks when the
        connection is lost. A handler cancelled half-way may have written (a runner's claim
        inserted, but its job never started): the redelivered message then finds the write
        done and does nothing, and the job is stranded. So the handler runs in a task of
        our own, shielded from that cancellation; its ack then fails with the channel, and
        the redelivery is absorbed by the handler's idempotency as usual.
        """
        if self._stopping:
            await message.nack(requeue=True)
            return
        try:
            envelope = Envelope.from_bytes(message.body)
        except (ValidationError, ValueError) as exc:
            log.error("undecodable message dead-lettered", queue=queue, error=str(exc))
            MESSAGES_CONSUMED.labels(queue, "rejected").inc()
            await message.reject(requeue=False)
            return
        self._in_hand += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(
            self._handle_in_order(queue, envelope, message, handler)
        )
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_done)
        await asyncio.shield(task)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handler_tasks.discard(task)
        self._in_hand -= 1
        if self._in_hand == 0:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("message handling failed", error=repr(task.exception()))

    async def _handle_in_order(
        self, queue: str, envelope: Envelope, message: AbstractIncomingMessage, handler: Handler
    ) -> None:
        # Messages about one subject (a job, a file) are handled one at a time in this
        # process: their guarded writes then never race each other, and events of one job
        # are applied in delivery order. Different subjects run in parallel.
        async with self._subject_locks.hold(envelope.subject):
            try:
                await self._handle(queue, envelope, message, handler)
            except Exception as exc:  # noqa: BLE001 - only the (n)ack can fail here
                log.warning(
                    "message not acknowledged (channel lost?); the broker redelivers it",
                    queue=queue,
                    event_id=envelope.id,
                    error=repr(exc),
                )

    async def _handle(
        self, queue: str, envelope: Envelope, message: AbstractIncomingMessage, handler: Handler
    ) -> None:
        parent = context_from_carrier(envelope.trace_carrier())
        delay = 0.25
        for attempt in range(self._handler_retries + 1):
            with _tracer.start_as_current_span(
                f"consume {envelope.routing_key}", context=parent, kind=SpanKind.CONSUMER
            ) as span:
                span.set_attribute("messaging.message.id", envelope.id)
                span.set_attribute("caesar.subject", envelope.subject)
                try:
                    await handler(envelope)
                except Rejected as exc:
                    span.record_exception(exc)
                    await self._dead_letter(queue, message, str(exc))
                    return
                except ValidationError as exc:
                    # The payload does not fit its schema: retrying cannot help.
                    span.record_exception(exc)
                    log.error(
                        "invalid message dead-lettered", queue=queue, event_id=envelope.id, error=str(exc)
                    )
                    MESSAGES_CONSUMED.labels(queue, "rejected").inc()
                    await message.reject(requeue=False)
                    return
                except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered by the broker
                    span.record_exception(exc)
                    last_error = exc
                else:
                    await message.ack()
                    MESSAGES_CONSUMED.labels(queue, "ok").inc()
                    return
            if self._stopping or attempt == self._handler_retries:
                break
            log.warning(
                "handler failed, retrying",
                queue=queue,
                event_id=envelope.id,
                attempt=attempt + 1,
                error=repr(last_error),
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        log.error(
            "handler gave up; message requeued",
            queue=queue,
            event_id=envelope.id,
            error=repr(last_error),
        )
        MESSAGES_CONSUMED.labels(queue, "failed").inc()
        await message.nack(requeue=True)

    async def _dead_letter(self, queue: str, message: AbstractIncomingMessage, reason: str) -> None:
        """Move a refused message to ``<queue>.dlq`` with its reason, then ack it.

        Published (with a confirm) through the dead-letter exchange, as the broker would
        dead-letter it, but with the reason attached; if that fails, a plain reject still
        dead-letters it, only without the reason.
        """
        log.error(
            "message refused and dead-lettered", queue=queue, message_id=message.message_id, reason=reason
        )
        MESSAGES_CONSUMED.labels(queue, "rejected").inc()
        copy = resent(message, {**(message.headers or {}), REASON_HEADER: reason[:1000]})
        try:
            exchange = await self._channel().get_exchange(DEAD_LETTER_EXCHANGE)
            await exchange.publish(copy, routing_key=queue, timeout=self._publish_timeout_s)
        except Exception as exc:  # noqa: BLE001 - the reject below still dead-letters it
            log.warning("refused message copied without its reason", queue=queue, error=repr(exc))
            await message.reject(requeue=False)
            return
        await message.ack()

    def _taken(self) -> None:
        self._in_hand += 1
        self._idle.clear()

    def _settled(self, count: int = 1) -> None:
        self._in_hand -= count
        if self._in_hand == 0:
            self._idle.set()

    async def stop_consuming(self, *, grace_s: float = 30.0) -> None:
        """Stop taking messages and let the ones in hand finish (SIGTERM path)."""
        self._stopping = True
        for subscription in self._subscriptions:
            await subscription.pause()
        self._subscriptions.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace_s)
        except TimeoutError:
            log.warning("messages still in hand at shutdown", count=self._in_hand)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class _Batcher:
    """Collects one subscription's deliveries into batches and handles them one batch at a time.

    There is no fixed window: while a batch is handled the next gathers, so a lone
    message waits for nothing and a backlog is taken in large batches. Batches run in a
    task of the bus (not aiormq's delivery tasks, which a dropped connection cancels), in
    delivery order, one after the other, so events of one subject stay in order.
    """

    def __init__(self, bus: Bus, queue: str, handler: Handler, batch: BatchHandler, max_batch: int) -> None:
        self._bus = bus
        self._queue = queue
        self._handler = handler
        self._batch = batch
        self._max_batch = max_batch
        self._waiting: list[tuple[AbstractIncomingMessage, Envelope]] = []
        self._worker: asyncio.Task[None] | None = None

    async def add(self, message: AbstractIncomingMessage) -> None:
        if self._bus._stopping:
            await message.nack(requeue=True)
            return
        try:
            envelope = Envelope.from_bytes(message.body)
        except (ValidationError, ValueError) as exc:
            log.error("undecodable message dead-lettered", queue=self._queue, error=str(exc))
            MESSAGES_CONSUMED.labels(self._queue, "rejected").inc()
            await message.reject(requeue=False)
            return
        self._bus._taken()
        self._waiting.append((message, envelope))
        if self._worker is None or self._worker.done():
            # An empty context: the worker outlives the delivery that started it.
            self._worker = asyncio.get_running_loop().create_task(self._work(), context=contextvars.Context())
            self._bus._handler_tasks.add(self._worker)
            self._worker.add_done_callback(self._bus._handler_tasks.discard)

    async def _work(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                await self._handle(taken)
            except Exception as exc:  # noqa: BLE001 - only an ack can fail here; redelivered
                log.warning("batch not acknowledged (channel lost?)", queue=self._queue, error=repr(exc))
            finally:
                self._bus._settled(len(taken))

    async def _handle(self, taken: list[tuple[AbstractIncomingMessage, Envelope]]) -> None:
        envelopes = [envelope for _, envelope in taken]
        # A batch continues the trace of its first message and links the others': the
        # worker task runs in an empty context, so nothing else can parent it by chance.
        parent = context_from_carrier(envelopes[0].trace_carrier())
        links = [Link(c) for c in (_span_context(e) for e in envelopes[1:]) if c.is_valid]
        with _tracer.start_as_current_span(
            f"consume batch {self._queue}", context=parent, links=links, kind=SpanKind.CONSUMER
        ) as span:
            span.set_attribute("messaging.batch.message_count", len(envelopes))
            try:
                await self._batch(envelopes)
            except Exception as exc:  # noqa: BLE001 - every message is tried alone instead
                span.record_exception(exc)
                log.warning(
                    "batch failed; handling its messages one by one",
                    queue=self._queue,
                    size=len(envelopes),
                    error=repr(exc),
                )
            else:
                for message, _ in taken:
                    await message.ack()
                MESSAGES_CONSUMED.labels(self._queue, "ok").inc(len(taken))
                return
        for message, envelope in taken:
            await self._bus._handle(self._queue, envelope, message, self._handler)

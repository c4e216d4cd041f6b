"""The bus against a real RabbitMQ: confirms, bindings, acks, retries, dead-lettering.

Every test runs in its own virtual host (``amqp_url``). What the broker holds is checked
with a plain aio-pika connection, independent of the code under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from caesar_common import access
from caesar_common.bus import Bus, QueueSpec, runner_pool_queue
from caesar_common.events import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    Envelope,
    FileDeleted,
    InputFile,
    JobStateChanged,
    RunJob,
    decode,
)
from caesar_common.jobstate import JobState
from tests.conftest import Vhost, rabbitmqctl
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, tzinfo=UTC)
JOB_ID = "01234567-89ab-cdef-0123-456789abcdef"
FILE_ID = "0123456789abcdef0123456789abcdef"
WAIT_S = 10.0


def state_event(state: JobState, attempt: int = 1) -> Envelope:
    return Envelope.wrap(
        JobStateChanged(
            job_id=JOB_ID,
            owner="alice",
            app="caesar",
            attempt=attempt,
            state=state,
            changed_at=T0,
        ),
        "test",
    )


def file_deleted() -> Envelope:
    return Envelope.wrap(FileDeleted(file_id=FILE_ID, owner="alice", size_bytes=1), "test")


def run_job(pool: str = "local") -> Envelope:
    return Envelope.wrap(
        RunJob(
            job_id=JOB_ID,
            owner="alice",
            app="caesar",
            attempt=1,
            params={},
            input=InputFile(file_id=FILE_ID, ext="fits"),
            wall_time_s=60,
            pool=pool,
        ),
        "scheduler",
    )


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    b = Bus(amqp_url, "test")
    await b.connect(wait_s=5)
    yield b
    await b.close()


@pytest.fixture
async def raw(amqp_url: str) -> AsyncIterator[AbstractConnection]:
    """An independent connection to look at queues."""
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


async def depth(raw: AbstractConnection, queue: str) -> int:
    """Ready messages in a queue (passive declare: fails if the queue does not exist)."""
    channel = await raw.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await channel.close()


async def consumers(raw: AbstractConnection, queue: str) -> int:
    """Consumers the broker has registered on a queue (passive declare)."""
    channel = await raw.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.consumer_count
        assert count is not None
        return count
    finally:
        await channel.close()


async def get_one(raw: AbstractConnection, queue: str) -> AbstractIncomingMessage:
    """The next message of ``queue`` (auto-acked), waiting up to WAIT_S for it."""
    channel = await raw.channel()
    got: list[AbstractIncomingMessage] = []
    try:
        q = await channel.declare_queue(queue, passive=True)

        async def arrived() -> bool:
            message = await q.get(no_ack=True, fail=False)
            if message is not None:
                got.append(message)
            return bool(got)

        await eventually(arrived, WAIT_S, what=f"a message in {queue}")
        return got[0]
    finally:
        await channel.close()


def first_death(message: AbstractIncomingMessage) -> dict[str, Any]:
    """The broker's newest ``x-death`` record of a dead-lettered message."""
    deaths = message.headers["x-death"]
    assert isinstance(deaths, list)
    death = deaths[0]
    assert isinstance(death, dict)
    return death


class Recorder:
    """A handler that records envelopes and lets a test wait for the n-th one."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []
        self._changed = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.received.append(envelope)
        self._changed.set()

    async def wait(self, n: int) -> list[Envelope]:
        async def until() -> None:
            while len(self.received) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), WAIT_S)
        return self.received


# --------------------------------------------------------------------- publish/consume


async def test_publish_with_confirm_and_consume_by_binding(bus: Bus, raw: AbstractConnection) -> None:
    recorder = Recorder()
    spec = QueueSpec("monitor.states", bindings=["job.state.*"])
    subscription = await bus.consume(spec, recorder)
    assert subscription.active
    await bus.declare(QueueSpec("spy", bindings=["#"]))

    first = state_event(JobState.TIMED_OUT)
    assert first.routing_key == "job.state.timed-out"
    await bus.publish(first)
    unbound = Envelope.wrap(
        FileDeleted(file_id=FILE_ID, owner="alice", size_bytes=1),
        "api",
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    await bus.publish(unbound)  # not bound to monitor.states: must never arrive there
    # A confirmed publish is in every bound queue by the time publish() returns.
    assert await depth(raw, "spy") == 2
    second = state_event(JobState.SUCCESS, attempt=2)
    await bus.publish(second)

    received = await recorder.wait(2)
    assert [e.id for e in received] == [first.id, second.id]
    assert received[0] == first
    message = decode(received[1])
    assert isinstance(message, JobStateChanged)
    assert message.state is JobState.SUCCESS
    assert message.attempt == 2
    # Marker: a bound event published after the unbound one. The queue is FIFO, so once
    # the marker is handled the unbound event would have been handled before it.
    marker = state_event(JobState.CANCELED, attempt=3)
    await bus.publish(marker)
    await recorder.wait(3)
    assert [e.id for e in recorder.received] == [first.id, second.id, marker.id]

    # What a foreign subscriber sees on the wire.
    await get_one(raw, "spy")
    wire = await get_one(raw, "spy")
    assert Envelope.from_bytes(wire.body) == unbound
    assert wire.message_id == unbound.id
    assert wire.type == "org.caesar.file.deleted.v1"
    assert wire.app_id == "api"
    assert wire.content_type == "application/json"
    assert wire.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert wire.routing_key == "file.deleted"
    assert wire.headers["traceparent"] == unbound.traceparent


ADMIN_USER = access.broker_user(access.ADMIN)


async def test_connected_only_while_the_broker_link_is_up(vhost: Vhost) -> None:
    """An outage shows in ``is_connected`` at once and until the link is restored.

    The monitor gives no watchdog verdict while cut off (heartbeats cannot reach it), so
    a robust connection that is reconnecting must not count as connected. The outage is
    made real and held: the broker drops the connection and refuses the user on the vhost
    until the permissions come back.
    """
    bus = Bus(vhost.url, "outage")
    await bus.connect(wait_s=5)
    reconnected = asyncio.Event()
    bus.connection.reconnect_callbacks.add(lambda *_: reconnected.set())
    try:
        assert bus.is_connected
        await asyncio.to_thread(rabbitmqctl, "clear_permissions", "-p", vhost.name, ADMIN_USER)
        await asyncio.to_thread(rabbitmqctl, "close_all_connections", "--vhost", vhost.name, "test outage")
        await eventually(lambda: not bus.is_connected, WAIT_S, "the outage seen")
        assert not reconnected.is_set()
        await asyncio.to_thread(
            rabbitmqctl, "set_permissions", "-p", vhost.name, ADMIN_USER, ".*", ".*", ".*"
        )
        await asyncio.wait_for(reconnected.wait(), 30)
        assert bus.is_connected
    finally:
        await bus.close()


async def test_publish_without_connection_fails_loudly() -> None:
    bus = Bus("amqp://guest:guest@127.0.0.1:1/", "test")
    assert not bus.is_connected
    with pytest.raises(RuntimeError, match="not connected"):
        await bus.publish(file_deleted())
    with pytest.raises(RuntimeError, match="not connected"):
        await bus.publish(run_job(), to_queue="runner.local")
    with pytest.raises(RuntimeError, match="not connected"):
        await bus.consume(QueueSpec("q"), Recorder())


# --------------------------------------------------------------------- acknowledgements


async def test_ack_only_after_the_handler_returns(amqp_url: str, raw: AbstractConnection) -> None:
    """A consumer that dies with a message in hand gives it back to the broker."""
    spec = QueueSpec("acks", bindings=["file.deleted"])
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        started.set()
        await gate.wait()

    crashing = Bus(amqp_url, "crashing")
    await crashing.connect(wait_s=5)
    await crashing.consume(spec, slow)
    envelope = file_deleted()
    await crashing.publish(envelope)
    await asyncio.wait_for(started.wait(), WAIT_S)
    # In hand, not acked: nothing ready in the queue, but it is not gone either.
    assert await depth(raw, "acks") == 0
    await crashing.close()  # the process "dies" before the handler returned
    try:
        survivor = Bus(amqp_url, "survivor")
        await survivor.connect(wait_s=5)
        recorder = Recorder()
        await survivor.consume(spec, recorder)
        [redelivered] = await recorder.wait(1)
        assert redelivered.id == envelope.id
        await survivor.stop_consuming(grace_s=5)
        await survivor.close()
    finally:
        gate.set()
    # The survivor's handler returned, so the message is gone for good.
    assert await depth(raw, "acks") == 0
    assert await depth(raw, "acks.dlq") == 0


async def test_a_dropped_connection_does_not_cancel_the_handler_in_hand(amqp_url: str, vhost: Vhost) -> None:
    """A handler whose connection drops mid-way still runs to its end.

    aiormq cancels a channel's delivery tasks when the connection is lost. A handler cut
    off after its write but before its follow-up strands work: a runner's claim was
    written, its job never started, and the redelivered command found the claim and did
    nothing (a job stuck in STARTED after a broker outage). The message is still
    redelivered, since its ack could not reach the broker.
    """
    bus = Bus(amqp_url, "test")
    await bus.connect(wait_s=5)
    lost, entered, gate, again = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    bus.connection.close_callbacks.add(lambda *_: lost.set())
    outcomes: list[str] = []

    async def handler(envelope: Envelope) -> None:
        if entered.is_set():
            outcomes.append("redelivered")
            again.set()
            return
        entered.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            outcomes.append("cancelled")
            raise
        outcomes.append("finished")

    await bus.consume(QueueSpec("in-hand", bindings=["file.deleted"]), handler)
    await bus.publish(file_deleted())
    await asyncio.wait_for(entered.wait(), WAIT_S)
    await asyncio.to_thread(rabbitmqctl, "close_all_connections", "-p", vhost.name, "test drops the link")
    await asyncio.wait_for(lost.wait(), WAIT_S)
    gate.set()
    await asyncio.wait_for(again.wait(), 3 * WAIT_S)  # the robust connection came back
    await bus.stop_consuming(grace_s=5)
    await bus.close()
    assert outcomes == ["finished", "redelivered"]


async def test_failing_handler_is_retried_in_process(amqp_url: str, raw: AbstractConnection) -> None:
    bus = Bus(amqp_url, "test", handler_retries=3)
    await bus.connect(wait_s=5)
    calls: list[str] = []
    done = asyncio.Event()

    async def flaky(envelope: Envelope) -> None:
        calls.append(envelope.id)
        if len(calls) < 3:
            raise ConnectionError("database is down")
        done.set()

    spec = QueueSpec("flaky", bindings=["file.deleted"], delivery_limit=1)
    await bus.consume(spec, flaky)
    envelope = file_deleted()
    await bus.publish(envelope)
    await asyncio.wait_for(done.wait(), WAIT_S)
    await bus.stop_consuming(grace_s=5)
    await bus.close()
    # Three calls, one delivery: the broker's delivery limit (1) was not burnt.
    assert calls == [envelope.id] * 3
    assert await depth(raw, "flaky") == 0
    assert await depth(raw, "flaky.dlq") == 0


async def test_undecodable_message_goes_straight_to_the_dlq(bus: Bus, raw: AbstractConnection) -> None:
    recorder = Recorder()
    await bus.consume(QueueSpec("strict", bindings=["file.deleted"], delivery_limit=5), recorder)
    channel = await raw.channel()
    exchange = await channel.get_exchange(EVENTS_EXCHANGE)
    bodies = [b"not json at all", b'{"json": "but not an envelope"}', b"\xff\xfe"]
    for body in bodies:
        await exchange.publish(aio_pika.Message(body=body), routing_key="file.deleted")
    good = file_deleted()
    await bus.publish(good)

    # The consumer survives the garbage and handles the good message, and only that.
    [received] = await recorder.wait(1)
    assert received.id == good.id
    for body in bodies:
        message = await get_one(raw, "strict.dlq")
        assert message.body == body
        death = first_death(message)
        assert death["reason"] == "rejected"
        assert death["queue"] == "strict"
    assert await depth(raw, "strict") == 0
    assert recorder.received == [good]


async def test_always_failing_handler_ends_in_the_dlq(amqp_url: str, raw: AbstractConnection) -> None:
    bus = Bus(amqp_url, "test", handler_retries=0)
    await bus.connect(wait_s=5)
    calls: list[str] = []

    async def poison(envelope: Envelope) -> None:
        calls.append(envelope.id)
        raise ValueError("cannot handle this")

    spec = QueueSpec("fragile", bindings=["job.state.*"], delivery_limit=2)
    await bus.consume(spec, poison)
    envelope = state_event(JobState.RUNNING)
    await bus.publish(envelope)
    message = await get_one(raw, "fragile.dlq")
    await bus.stop_consuming(grace_s=5)
    await bus.close()

    assert Envelope.from_bytes(message.body) == envelope
    death = first_death(message)
    assert death["reason"] == "delivery_limit"
    assert death["queue"] == "fragile"
    assert death["exchange"] == EVENTS_EXCHANGE
    # The first delivery plus ``delivery_limit`` redeliveries, one handler call each.
    assert calls == [envelope.id] * (spec.delivery_limit + 1)
    assert await depth(raw, "fragile") == 0
    # Dead-lettering goes through caesar.dlx with the queue's name as routing key.
    channel = await raw.channel()
    await channel.get_exchange(DEAD_LETTER_EXCHANGE)  # exists (passive)
    await channel.close()


# --------------------------------------------------------------------- flow control


async def test_pause_and_resume(bus: Bus, raw: AbstractConnection) -> None:
    recorder = Recorder()
    subscription = await bus.consume(QueueSpec("pool", bindings=["file.deleted"]), recorder)
    await subscription.pause()
    assert not subscription.active
    await subscription.pause()  # idempotent

    # Paused means the broker has no consumer for the queue (pause() returned after the
    # broker's cancel-ok), so nothing can be delivered to the process from here on.
    assert await consumers(raw, "pool") == 0

    envelope = file_deleted()
    await bus.publish(envelope)  # confirmed: in the queue now
    assert await depth(raw, "pool") == 1  # waiting in the broker, not in the process
    assert recorder.received == []

    await subscription.resume()
    assert subscription.active
    [received] = await recorder.wait(1)
    assert received.id == envelope.id

    # Prefetch can be changed on the fly (a runner's free slots).
    await subscription.set_prefetch(0)
    second = file_deleted()
    await bus.publish(second)
    await recorder.wait(2)
    assert [e.id for e in recorder.received] == [envelope.id, second.id]


async def test_stop_consuming_waits_for_the_message_in_hand(
    amqp_url: str, bus: Bus, raw: AbstractConnection
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(envelope: Envelope) -> None:
        started.set()
        await gate.wait()
        finished.append(envelope.id)

    spec = QueueSpec("graceful", bindings=["file.deleted"])
    subscription = await bus.consume(spec, slow)
    first = file_deleted()
    await bus.publish(first)
    await asyncio.wait_for(started.wait(), WAIT_S)

    stopping = asyncio.ensure_future(bus.stop_consuming(grace_s=WAIT_S))
    await eventually(lambda: not subscription.active, WAIT_S, what="stop_consuming to pause the consumer")
    # Marker: a request on the subscription's channel after the cancel. A channel answers
    # its requests in order, so once the marker is answered the cancel was too, and
    # stop_consuming has gone as far as it can without the message in hand.
    await subscription.channel.declare_queue(spec.name, passive=True)
    # No more messages are taken after stopping.
    await bus.publish(file_deleted())
    assert await depth(raw, "graceful") == 1
    assert not stopping.done()  # the message in hand is not abandoned
    gate.set()
    await asyncio.wait_for(stopping, WAIT_S)
    assert finished == [first.id]

    # The handled one was acked (once the connection is closed, an unacked message would
    # be back in the queue too); the marker was never taken.
    await bus.close()
    assert finished == [first.id]
    assert await depth(raw, "graceful") == 1

    # A handler that never returns does not hold shutdown beyond the grace period.
    stuck_bus = Bus(amqp_url, "stuck")
    await stuck_bus.connect(wait_s=5)
    started.clear()
    never = asyncio.Event()

    async def stuck(envelope: Envelope) -> None:
        started.set()
        await never.wait()

    await stuck_bus.consume(spec, stuck)  # takes the message left in the queue
    await asyncio.wait_for(started.wait(), WAIT_S)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(stuck_bus.stop_consuming(grace_s=0.3), WAIT_S)
    assert 0.25 <= loop.time() - t0 < 3
    await stuck_bus.close()
    never.set()


# --------------------------------------------------------------------- commands


async def test_command_goes_to_its_queue_not_to_the_exchange(bus: Bus, raw: AbstractConnection) -> None:
    recorder = Recorder()
    queue = runner_pool_queue("local")
    assert queue == "runner.local"
    await bus.consume(QueueSpec(queue), recorder)  # no bindings: commands only
    await bus.declare(QueueSpec("spy", bindings=["#"]))

    command = run_job("local")
    assert command.routing_key == queue
    await bus.publish(command, to_queue=queue)
    [received] = await recorder.wait(1)
    assert received == command
    assert isinstance(decode(received), RunJob)
    assert await depth(raw, "spy") == 0  # the events exchange never saw it

    # The same envelope published as an event reaches the spy, not the pool queue.
    await bus.publish(command)
    assert await depth(raw, "spy") == 1
    # Marker: a second command to the queue. The queue is FIFO, so had the event been
    # routed to it, it would have been handled before the marker.
    marker = run_job("local")
    await bus.publish(marker, to_queue=queue)
    await recorder.wait(2)
    assert [e.id for e in recorder.received] == [command.id, marker.id]
    assert await depth(raw, "spy") == 1


async def test_command_to_missing_queue_raises_instead_of_vanishing(amqp_url: str) -> None:
    """A RunJob sent before any runner declared its queue must stay in the outbox."""
    import aio_pika.exceptions

    from caesar_common.events import Envelope, RunnerHeartbeat

    bus = Bus(amqp_url, "test")
    await bus.connect()
    try:
        envelope = Envelope.wrap(
            RunnerHeartbeat(runner_id="r", pool="p", slots_total=1, slots_free=1, sent_at=datetime.now(UTC)),
            "test",
        )
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await bus.publish(envelope, to_queue="runner.nowhere")
        await bus.publish(envelope)  # an event nobody listens to yet is simply not routed
    finally:
        await bus.close()


# --------------------------------------------------------------------- batches


async def test_a_backlog_is_handled_in_batches_in_delivery_order(bus: Bus, raw: AbstractConnection) -> None:
    spec = QueueSpec("batched", bindings=["job.state.*"])
    sent = [state_event(JobState.RUNNING, attempt=n) for n in range(1, 41)]
    channel = await raw.channel()
    await bus.declare(spec)
    for envelope in sent:  # a backlog waits before the consumer starts
        await bus.publish(envelope)
    await channel.close()
    batches: list[list[str]] = []
    release = asyncio.Event()

    async def one(envelope: Envelope) -> None:
        raise AssertionError("the batch handler takes every message")

    async def many(envelopes: Any) -> None:
        batches.append([e.id for e in envelopes])
        await release.wait()  # the first batch is in hand while the rest is delivered

    await bus.consume(spec, one, prefetch=64, batch=many, max_batch=16)
    # Every message delivered (none left ready in the queue) while the first batch is held.
    await eventually(lambda: _depth_is(raw, "batched", 0), WAIT_S, "every message delivered")
    release.set()
    await eventually(lambda: sum(len(b) for b in batches) == len(sent), WAIT_S, "every message handled")
    await bus.stop_consuming(grace_s=5)
    assert [i for b in batches for i in b] == [e.id for e in sent]
    rest = len(sent) - len(batches[0])  # waited in the batcher: taken 16 at a time
    assert [len(b) for b in batches[1:]] == [16] * (rest // 16) + ([rest % 16] if rest % 16 else [])
    assert max(len(b) for b in batches) <= 16
    await eventually(lambda: _depth_is(raw, "batched", 0), WAIT_S, "every message acked")


async def _depth_is(raw: AbstractConnection, queue: str, n: int) -> bool:
    return await depth(raw, queue) == n


async def test_a_poison_message_in_a_batch_is_dead_lettered_alone(
    amqp_url: str, raw: AbstractConnection
) -> None:
    bus = Bus(amqp_url, "test", handler_retries=0)
    await bus.connect(wait_s=5)
    spec = QueueSpec("batched-fragile", bindings=["job.state.*"], delivery_limit=1)
    good = [state_event(JobState.RUNNING, attempt=n) for n in (1, 2, 3)]
    poison = state_event(JobState.FAILURE, attempt=4)
    handled: list[str] = []

    async def one(envelope: Envelope) -> None:
        if envelope.id == poison.id:
            raise ValueError("cannot handle this")
        handled.append(envelope.id)

    async def many(envelopes: Any) -> None:
        if any(e.id == poison.id for e in envelopes):
            raise ValueError("one bad apple")
        handled.extend(e.id for e in envelopes)

    await bus.declare(spec)
    for envelope in [good[0], poison, *good[1:]]:
        await bus.publish(envelope)
    await bus.consume(spec, one, prefetch=16, batch=many)
    message = await get_one(raw, "batched-fragile.dlq")
    await eventually(lambda: set(handled) == {e.id for e in good}, WAIT_S, "the good messages handled")
    await bus.stop_consuming(grace_s=5)
    await bus.close()
    assert Envelope.from_bytes(message.body).id == poison.id
    assert await depth(raw, "batched-fragile.dlq") == 0  # taken by get_one: only the poison was there

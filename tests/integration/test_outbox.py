"""The transactional outbox against the real broker and MongoDB-wire server.

Events are read back from the broker with a plain aio-pika connection (a spy queue bound
to ``#`` on ``caesar.events``), so what is checked is what a subscriber would see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import TracerProvider
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.bus import Bus, runner_pool_queue
from caesar_common.events import (
    EVENTS_EXCHANGE,
    Envelope,
    FileDeleted,
    InputFile,
    JobStateChanged,
    RunJob,
)
from caesar_common.jobstate import JobState
from caesar_common.outbox import (
    OUTBOX_INDEX,
    OutboxRelay,
    envelope_for,
    merge_updates,
    outbox_fields,
    outbox_update,
)
from tests.integration.service_support import eventually, sample

pytestmark = pytest.mark.integration

Document = dict[str, Any]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
JOB_ID = "01234567-89ab-cdef-0123-456789abcdef"
FILE_ID = "0123456789abcdef0123456789abcdef"
WAIT_S = 10.0


def state(job_id: str, s: JobState, attempt: int = 1) -> Envelope:
    return envelope_for(
        JobStateChanged(job_id=job_id, owner="alice", app="caesar", attempt=attempt, state=s, changed_at=T0),
        "scheduler",
    )


def run_job(job_id: str) -> Envelope:
    return envelope_for(
        RunJob(
            job_id=job_id,
            owner="alice",
            app="caesar",
            attempt=1,
            params={"x": 1},
            input=InputFile(file_id=FILE_ID, ext="fits"),
            wall_time_s=60,
            pool="local",
        ),
        "scheduler",
    )


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    b = Bus(amqp_url, "scheduler")
    await b.connect(wait_s=5)
    yield b
    await b.close()


@pytest.fixture
async def jobs(async_mongo: AsyncMongoClient[Document], db_prefix: str) -> AsyncCollection[Document]:
    collection = async_mongo[f"{db_prefix}_outbox"]["jobs"]
    await collection.create_indexes([OUTBOX_INDEX])
    return collection


@pytest.fixture
async def files(async_mongo: AsyncMongoClient[Document], db_prefix: str) -> AsyncCollection[Document]:
    collection = async_mongo[f"{db_prefix}_outbox"]["files"]
    await collection.create_indexes([OUTBOX_INDEX])
    return collection


class Spy:
    """Queues on the broker that catch every event and the runner.local commands."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.queues: dict[str, AbstractQueue] = {}

    async def setup(self) -> Spy:
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        events = await channel.declare_queue("spy.events", durable=True)
        await events.bind(exchange, routing_key="#")
        commands = await channel.declare_queue(runner_pool_queue("local"), durable=True)
        self.queues = {"events": events, "commands": commands}
        return self

    async def take(self, which: str, n: int) -> list[Envelope]:
        """Exactly the next ``n`` messages of a spy queue, in order (waits for them)."""
        got: list[Envelope] = []

        async def all_taken() -> bool:
            message = await self.queues[which].get(no_ack=True, fail=False)
            if message is not None:
                envelope = Envelope.from_bytes(message.body)
                assert message.message_id == envelope.id
                got.append(envelope)
            return len(got) >= n

        await eventually(all_taken, WAIT_S, what=f"{n} messages in {which}")
        return got

    async def empty(self, which: str) -> bool:
        return await self.queues[which].get(no_ack=True, fail=False) is None


@pytest.fixture
async def spy(amqp_url: str) -> AsyncIterator[Spy]:
    connection = await aio_pika.connect(amqp_url)
    yield await Spy(connection).setup()
    await connection.close()


async def outbox_of(collection: AsyncCollection[Document], doc_id: Any) -> Document:
    doc = await collection.find_one({"_id": doc_id})
    assert doc is not None
    return doc


# --------------------------------------------------------------------- writing the outbox


def test_update_helpers_compose_one_atomic_update() -> None:
    e1, e2, cmd = state(JOB_ID, JobState.QUEUED), state(JOB_ID, JobState.STARTED), run_job(JOB_ID)
    fields = outbox_fields([e1])
    assert fields["outbox_pending"] is True
    assert [i["id"] for i in fields["outbox"]] == [e1.id]
    assert "to_queue" not in fields["outbox"][0]
    assert outbox_fields([cmd], to_queue="runner.local")["outbox"][0]["to_queue"] == "runner.local"

    update = merge_updates(
        {"$set": {"state": "QUEUED"}, "$inc": {"version": 1}},
        outbox_update([e2], commands=[(cmd, "runner.local")]),
    )
    assert update["$set"] == {"state": "QUEUED", "outbox_pending": True}
    assert update["$inc"] == {"version": 1}
    items = update["$push"]["outbox"]["$each"]
    assert [i["id"] for i in items] == [e2.id, cmd.id]
    assert [i.get("to_queue") for i in items] == [None, "runner.local"]

    # Two outbox updates merged into one write keep every event, in order.
    both = merge_updates(outbox_update([e1]), {"$set": {"state": "STARTED"}}, outbox_update([e2]))
    assert [i["id"] for i in both["$push"]["outbox"]["$each"]] == [e1.id, e2.id]
    assert both["$set"] == {"outbox_pending": True, "state": "STARTED"}
    plain = merge_updates({"$push": {"log": "a"}}, {"$push": {"log": {"$each": ["b", "c"]}}})
    assert plain == {"$push": {"log": {"$each": ["a", "b", "c"]}}}
    with pytest.raises(ValueError, match="modifiers"):
        merge_updates(
            {"$push": {"log": {"$each": ["a"], "$slice": -5}}},
            {"$push": {"log": {"$each": ["b"]}}},
        )
    # Other operators merge field by field; the later value of one field wins.
    assert merge_updates({"$set": {"a": 1, "b": 1}}, {"$set": {"b": 2}}) == {"$set": {"a": 1, "b": 2}}


# --------------------------------------------------------------------- publishing


async def test_publish_document_in_order_then_clears_the_outbox(
    bus: Bus, jobs: AsyncCollection[Document], spy: Spy
) -> None:
    pending, queued = state(JOB_ID, JobState.PENDING), state(JOB_ID, JobState.QUEUED)
    await jobs.insert_one({"_id": JOB_ID, "state": "PENDING", **outbox_fields([pending])})
    started, running, cmd = (
        state(JOB_ID, JobState.STARTED),
        state(JOB_ID, JobState.RUNNING),
        run_job(JOB_ID),
    )
    result = await jobs.update_one(
        {"_id": JOB_ID},
        merge_updates(
            {"$set": {"state": "RUNNING"}},
            outbox_update([queued, started], commands=[(cmd, "runner.local")]),
            outbox_update([running]),
        ),
    )
    assert result.modified_count == 1
    doc = await outbox_of(jobs, JOB_ID)
    assert doc["state"] == "RUNNING"
    assert doc["outbox_pending"] is True
    assert [i["id"] for i in doc["outbox"]] == [
        pending.id,
        queued.id,
        started.id,
        cmd.id,
        running.id,
    ]

    relay = OutboxRelay(bus, [jobs])
    assert await relay.pending() == 1
    assert await relay.publish_document(jobs, JOB_ID) == 5

    events = await spy.take("events", 4)
    assert [e.id for e in events] == [pending.id, queued.id, started.id, running.id]
    assert events[1] == queued
    [command] = await spy.take("commands", 1)
    assert command == cmd
    assert await spy.empty("events")

    doc = await outbox_of(jobs, JOB_ID)
    assert doc["outbox"] == []
    assert "outbox_pending" not in doc
    assert doc["state"] == "RUNNING"
    assert await relay.pending() == 0

    # Publishing again finds nothing to do.
    assert await relay.publish_document(jobs, JOB_ID) == 0
    assert await relay.publish_document(jobs, "no-such-document") == 0
    assert await spy.empty("events")


async def test_one_bad_document_does_not_hold_back_the_others(
    bus: Bus, jobs: AsyncCollection[Document], spy: Spy
) -> None:
    """An event that no longer validates is skipped (and counted); the rest go out."""
    good = state("job-good", JobState.PENDING)
    await jobs.insert_one(
        {"_id": "job-bad", "outbox": [{"id": "x", "type": "nonsense"}], "outbox_pending": True}
    )
    await jobs.insert_one({"_id": "job-good", **outbox_fields([good])})
    relay = OutboxRelay(bus, [jobs])
    before = sample("caesar_outbox_publish_failures_total", collection=jobs.name)
    assert await relay.sweep_once() == 1
    [published] = await spy.take("events", 1)
    assert published.id == good.id
    assert sample("caesar_outbox_publish_failures_total", collection=jobs.name) == before + 1
    assert await relay.pending() == 1  # kept for an operator to look at, not dropped


async def test_sweep_publishes_what_a_crash_left_behind(
    bus: Bus, jobs: AsyncCollection[Document], files: AsyncCollection[Document], spy: Spy
) -> None:
    """Documents written with events whose fast path never ran (the process died)."""
    job_a, job_b = "job-a", "job-b"
    a1, a2 = state(job_a, JobState.PENDING), state(job_a, JobState.CANCELED)
    b1 = state(job_b, JobState.PENDING)
    deleted = envelope_for(FileDeleted(file_id=FILE_ID, owner="alice", size_bytes=3), "api")
    await jobs.insert_one({"_id": job_a, **outbox_fields([a1, a2])})
    await jobs.insert_one({"_id": job_b, **outbox_fields([b1])})
    await jobs.insert_one({"_id": "quiet", "state": "SUCCESS"})  # nothing to publish
    await files.insert_one({"_id": FILE_ID, **outbox_fields([deleted])})

    relay = OutboxRelay(bus, [jobs, files])  # a fresh process: it never kicked anything
    assert await relay.pending() == 3
    assert await relay.sweep_once() == 4

    events = await spy.take("events", 4)
    ids = [e.id for e in events]
    assert sorted(ids) == sorted([a1.id, a2.id, b1.id, deleted.id])
    assert ids.index(a1.id) < ids.index(a2.id)  # in order within a document
    assert await spy.empty("events")
    assert await relay.pending() == 0
    for collection, doc_id in ((jobs, job_a), (jobs, job_b), (files, FILE_ID)):
        doc = await outbox_of(collection, doc_id)
        assert doc["outbox"] == []
        assert "outbox_pending" not in doc
    assert await outbox_of(jobs, "quiet") == {"_id": "quiet", "state": "SUCCESS"}
    assert await relay.sweep_once() == 0

    # Started, the relay sweeps by itself.
    relay = OutboxRelay(bus, [jobs, files], sweep_interval_s=0.1)
    relay.start()
    try:
        late = state("job-c", JobState.PENDING)
        await jobs.insert_one({"_id": "job-c", **outbox_fields([late])})
        [published] = await spy.take("events", 1)
        assert published.id == late.id
    finally:
        await relay.flush(timeout_s=5)
    assert await relay.pending() == 0


async def test_kick_publishes_right_away(bus: Bus, jobs: AsyncCollection[Document], spy: Spy) -> None:
    relay = OutboxRelay(bus, [jobs])  # no sweeper: only the fast path can publish
    first = state(JOB_ID, JobState.PENDING)
    await jobs.insert_one({"_id": JOB_ID, **outbox_fields([first])})
    relay.kick(jobs, JOB_ID)
    [published] = await spy.take("events", 1)
    assert published.id == first.id

    # A kick while the document is being drained is not lost: the drain goes round again.
    second, cmd = state(JOB_ID, JobState.QUEUED), run_job(JOB_ID)
    third = state(JOB_ID, JobState.STARTED)
    await jobs.update_one(
        {"_id": JOB_ID}, merge_updates(outbox_update([second], commands=[(cmd, "runner.local")]))
    )
    relay.kick(jobs, JOB_ID)
    await jobs.update_one({"_id": JOB_ID}, outbox_update([third]))
    relay.kick(jobs, JOB_ID)
    events = await spy.take("events", 2)
    assert [e.id for e in events] == [second.id, third.id]
    [command] = await spy.take("commands", 1)
    assert command.id == cmd.id

    async def drained() -> bool:
        doc = await outbox_of(jobs, JOB_ID)
        return doc["outbox"] == [] and "outbox_pending" not in doc

    await eventually(drained, WAIT_S)
    await relay.flush(timeout_s=5)
    assert await spy.empty("events")  # each event exactly once


async def test_broker_failure_loses_nothing(amqp_url: str, jobs: AsyncCollection[Document], spy: Spy) -> None:
    bus = Bus(amqp_url, "scheduler")
    await bus.connect(wait_s=5)
    relay = OutboxRelay(bus, [jobs])
    events = [state(JOB_ID, JobState.PENDING), state(JOB_ID, JobState.QUEUED)]
    await jobs.insert_one({"_id": JOB_ID, **outbox_fields(events)})
    await bus.close()  # the broker goes away between the write and the publish

    # Whatever aio-pika raises on a closed channel (a RuntimeError subclass today).
    with pytest.raises(RuntimeError):
        await relay.publish_document(jobs, JOB_ID)
    relay.kick(jobs, JOB_ID)  # the fast path fails quietly: the sweep will retry
    await relay.flush(timeout_s=2)  # waits for the failed kick, sweeps; logs, never raises
    with pytest.raises(RuntimeError):
        await relay.sweep_once()
    doc = await outbox_of(jobs, JOB_ID)
    assert [i["id"] for i in doc["outbox"]] == [e.id for e in events]
    assert doc["outbox_pending"] is True
    assert await spy.empty("events")

    await bus.connect(wait_s=5)  # the broker is back
    try:
        assert await relay.sweep_once() == 2
    finally:
        await bus.close()
    published = await spy.take("events", 2)
    assert [e.id for e in published] == [e.id for e in events]
    assert await relay.pending() == 0


async def test_duplicate_publish_publishes_every_event_twice(
    bus: Bus, jobs: AsyncCollection[Document], spy: Spy
) -> None:
    relay = OutboxRelay(bus, [jobs], duplicate_publish=True)
    e1, e2, cmd = state(JOB_ID, JobState.PENDING), state(JOB_ID, JobState.QUEUED), run_job(JOB_ID)
    await jobs.insert_one({"_id": JOB_ID, **outbox_fields([e1, e2])})
    await jobs.update_one({"_id": JOB_ID}, outbox_update([], commands=[(cmd, "runner.local")]))
    assert await relay.publish_document(jobs, JOB_ID) == 3
    events = await spy.take("events", 4)
    assert [e.id for e in events] == [e1.id, e1.id, e2.id, e2.id]
    assert [c.id for c in await spy.take("commands", 2)] == [cmd.id, cmd.id]
    assert await spy.empty("events")
    assert await relay.pending() == 0


async def test_trace_context_travels_with_the_event(
    bus: Bus, jobs: AsyncCollection[Document], spy: Spy
) -> None:
    tracer = TracerProvider().get_tracer("test")
    # A request arrives with a trace context (and vendor state) from upstream.
    upstream = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=abc",
    }
    with tracer.start_as_current_span("POST /jobs", context=extract(upstream)) as span:
        ctx = span.get_span_context()
        inside = state(JOB_ID, JobState.PENDING)
    outside = state(JOB_ID, JobState.QUEUED)  # created outside any span

    expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"
    assert f"{ctx.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inside.traceparent == expected
    assert inside.tracestate == "vendor=abc"
    assert outside.traceparent is None

    # Published later, from the relay, outside the span: the captured context is kept.
    await jobs.insert_one({"_id": JOB_ID, **outbox_fields([inside, outside])})
    assert await OutboxRelay(bus, [jobs]).publish_document(jobs, JOB_ID) == 2
    first, second = await spy.take("events", 2)
    assert first.traceparent == expected
    assert first.tracestate == "vendor=abc"
    assert first.trace_carrier() == {"traceparent": expected, "tracestate": "vendor=abc"}
    assert second.traceparent is None
    assert second.trace_carrier() == {}


async def test_kicked_events_are_published_from_memory_and_cleared_in_one_write(
    bus: Bus, jobs: AsyncCollection[Document], spy: Spy
) -> None:
    """The fast path never reads a document back, and clears a whole batch in one command."""
    relay = OutboxRelay(bus, [jobs])  # no sweeper: only the fast path can publish
    written: list[Envelope] = []
    ids = [f"job-{i:02d}" for i in range(20)]
    for doc_id in ids:
        first = state(doc_id, JobState.PENDING)
        await jobs.insert_one({"_id": doc_id, **outbox_fields([first])})
        written.append(first)
    finds_before = sample("caesar_db_commands_total", command="find")
    updates_before = sample("caesar_db_commands_total", command="update")
    for doc_id, envelope in zip(ids, written, strict=True):
        relay.kick(jobs, doc_id, [envelope])
    published = await spy.take("events", len(ids))
    assert sorted(e.id for e in published) == sorted(e.id for e in written)
    await relay.flush(timeout_s=5)  # waits for the batch's clear, then sweeps (one find)
    assert await relay.pending() == 0
    assert sample("caesar_db_commands_total", command="find") - finds_before == 1  # the sweep's
    # One bulk update per batch; the kicks were all waiting, so at most two batches ran.
    assert sample("caesar_db_commands_total", command="update") - updates_before <= 2
    assert await spy.empty("events")


async def test_events_appended_after_a_kick_stay_for_the_next_kick(
    bus: Bus, jobs: AsyncCollection[Document], spy: Spy
) -> None:
    """The clear removes only what was published; later events keep the document pending."""
    relay = OutboxRelay(bus, [jobs])
    first, second = state(JOB_ID, JobState.PENDING), state(JOB_ID, JobState.QUEUED)
    await jobs.insert_one({"_id": JOB_ID, **outbox_fields([first])})
    # Appended by another writer whose kick has not come yet.
    await jobs.update_one({"_id": JOB_ID}, outbox_update([second]))
    relay.kick(jobs, JOB_ID, [first])
    [published] = await spy.take("events", 1)
    assert published.id == first.id

    async def only_second_left() -> bool:
        doc = await outbox_of(jobs, JOB_ID)
        return [i["id"] for i in doc["outbox"]] == [second.id]

    await eventually(only_second_left, WAIT_S)
    assert (await outbox_of(jobs, JOB_ID))["outbox_pending"] is True
    relay.kick(jobs, JOB_ID, [second])
    [published] = await spy.take("events", 1)
    assert published.id == second.id
    await relay.flush(timeout_s=5)
    doc = await outbox_of(jobs, JOB_ID)
    assert doc["outbox"] == []
    assert "outbox_pending" not in doc
    assert await spy.empty("events")

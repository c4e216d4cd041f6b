"""Scheduler handlers through the real broker and database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from caesar_common.bus import Bus, runner_pool_queue
from caesar_common.events import (
    Envelope,
    InputFile,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    RunJob,
    RunnerHeartbeat,
)
from caesar_common.jobstate import JobState
from caesar_common.runtime import ServiceRuntime
from caesar_scheduler import metrics
from caesar_scheduler.adapters.jobs import COLLECTION
from caesar_scheduler.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build
from caesar_scheduler.domain.admission import job_document
from caesar_scheduler.entrypoints.consumer import SCHEDULER_QUEUE
from caesar_scheduler.settings import SchedulerSettings
from tests.integration.conftest import ServiceStarter
from tests.integration.event_tap import EventTap, marker, outbox_drained
from tests.integration.service_support import eventually, handled, sample

pytestmark = pytest.mark.integration
POOL = "local"


SchedulerFactory = Callable[..., Awaitable[ServiceRuntime[SchedulerSettings]]]


@pytest.fixture
def scheduler_with(
    amqp_url: str, mongo_url: str, db_prefix: str, start_service: ServiceStarter
) -> SchedulerFactory:
    """Start the scheduler with the test defaults below, overridden by keyword arguments."""

    async def start(**overrides: Any) -> ServiceRuntime[SchedulerSettings]:
        defaults: dict[str, Any] = {
            "dispatch_interval_s": 0.2,
            "retry_backoff_s": 0.2,
            "max_attempts": 2,
            "outbox_sweep_interval_s": 0.5,
        }
        settings = SchedulerSettings(
            amqp_url=amqp_url,
            mongo_url=mongo_url,
            mongo_db_prefix=db_prefix,
            **{**defaults, **overrides},
        )
        # No dispatch round of this scheduler has run yet (see ``round_saw``).
        metrics.WAITING_JOBS.labels(POOL).set(-1)
        metrics.FREE_SLOTS.labels(POOL).set(-1)
        return await start_service(
            SERVICE, settings, build, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS
        )

    return start


@pytest.fixture
async def scheduler(scheduler_with: SchedulerFactory) -> ServiceRuntime[SchedulerSettings]:
    return await scheduler_with()


def submission(job_id: str, owner: str = "alice", app: str = "aegean") -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        owner=owner,
        app=app,
        params={"seedthr": 5.0},
        input=InputFile(file_id="a" * 32, ext="fits"),
        wall_time_s=60,
        submitted_at=datetime.now(UTC),
    )


def submitted(job_id: str, owner: str = "alice", app: str = "aegean") -> Envelope:
    return Envelope.wrap(submission(job_id, owner, app), "test")


def heartbeat(slots: int) -> Envelope:
    return Envelope.wrap(
        RunnerHeartbeat(
            runner_id="r1",
            pool="local",
            slots_total=slots,
            slots_free=slots,
            sent_at=datetime.now(UTC),
        ),
        "test",
    )


async def read_commands(amqp_url: str, n: int | None = None, timeout_s: float = 10.0) -> list[RunJob]:
    """The next ``n`` RunJob commands of the pool's queue, waiting for them (fails if fewer
    come); with no ``n``, the commands in the queue right now, without waiting.
    """
    connection = await aio_pika.connect(amqp_url)
    out: list[RunJob] = []
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(runner_pool_queue(POOL))

        async def take() -> bool:
            message = await queue.get(fail=False)
            if message is None:
                return n is None
            await message.ack()
            out.append(RunJob.model_validate(Envelope.from_bytes(message.body).data))
            return len(out) == n

        await eventually(take, timeout_s, what=f"{n} RunJob commands")
        return out
    finally:
        await connection.close()


async def round_saw(waiting: int, free: int) -> None:
    """Wait for a dispatch round that saw ``waiting`` jobs and ``free`` slots in the pool.

    The round sets both gauges before it dispatches, and picks no more jobs than there
    are free slots: after a round that saw no slot free (or no job waiting) and with the
    scheduler's outbox then drained, every command it will ever send for what it saw is
    in the queue. The fixture resets the gauges, so no earlier test's round answers.
    """

    def seen() -> bool:
        return (
            sample("caesar_scheduler_waiting_jobs", pool=POOL),
            sample("caesar_scheduler_free_slots", pool=POOL),
        ) == (waiting, free)

    await eventually(seen, what=f"a dispatch round with {waiting} waiting and {free} free")


async def nothing_more_sent(scheduler: ServiceRuntime[SchedulerSettings], amqp_url: str) -> None:
    """No command beyond those already read: the outbox is drained and the queue empty."""
    assert await outbox_drained(scheduler.relay) == 0
    assert await read_commands(amqp_url) == []


async def test_submitted_job_is_queued_then_dispatched_when_a_slot_appears(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    async with EventTap(amqp_url, ["job.state.#"]) as tap:
        await bus.publish(submitted("11111111-1111-4111-8111-111111111111"))
        queued = await tap.wait_for(lambda e: e.data["state"] == "QUEUED")
        assert queued.data["attempt"] == 1
        assert queued.owner == "alice"
    await round_saw(waiting=1, free=0)
    await nothing_more_sent(scheduler, amqp_url)  # no runner yet: nothing sent
    await bus.publish(heartbeat(1))
    commands = await read_commands(amqp_url, 1)
    assert [c.job_id for c in commands] == ["11111111-1111-4111-8111-111111111111"]
    assert commands[0].attempt == 1
    assert commands[0].pool == "local"


async def test_capacity_limits_dispatch_and_terminal_state_frees_slot(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    ids = [f"2222222{i}-2222-4222-8222-222222222222" for i in range(3)]
    for job_id in ids:
        await bus.publish(submitted(job_id))
    await bus.publish(heartbeat(2))
    first = await read_commands(amqp_url, 2)
    await round_saw(waiting=1, free=0)  # the third waits for a slot
    await nothing_more_sent(scheduler, amqp_url)
    done = first[0]
    await bus.publish(
        Envelope.wrap(
            JobStateChanged(
                job_id=done.job_id,
                owner="alice",
                app="aegean",
                attempt=1,
                state=JobState.SUCCESS,
                changed_at=datetime.now(UTC),
            ),
            "test",
        )
    )
    second = await read_commands(amqp_url, 1)
    assert {c.job_id for c in first + second} == set(ids)


async def test_cancel_of_waiting_job_emits_canceled(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    job_id = "33333333-3333-4333-8333-333333333333"
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await bus.publish(submitted(job_id))
        await tap.wait_for(lambda e: e.data["state"] == "QUEUED")
        await bus.publish(
            Envelope.wrap(
                JobCancelRequested(job_id=job_id, owner="alice", requested_at=datetime.now(UTC)),
                "test",
            )
        )
        canceled = await tap.wait_for(lambda e: e.data["state"] == "CANCELED")
        assert canceled.subject == job_id
    await bus.publish(heartbeat(4))
    await round_saw(waiting=0, free=4)
    await nothing_more_sent(scheduler, amqp_url)


async def test_cancel_overtaking_submission_still_cancels(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    job_id = "44444444-4444-4444-8444-444444444444"
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await bus.publish(
            Envelope.wrap(
                JobCancelRequested(job_id=job_id, owner="alice", requested_at=datetime.now(UTC)),
                "test",
            )
        )
        jobs = scheduler.collection(COLLECTION)

        async def cancel_recorded() -> bool:
            return await jobs.find_one({"_id": job_id}) is not None

        await eventually(cancel_recorded, what="the early cancel to be recorded")
        await bus.publish(submitted(job_id))
        canceled = await tap.wait_for(lambda e: e.subject == job_id)
        assert canceled.data["state"] == "CANCELED"


async def test_container_app_is_aborted_with_reason(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    async with EventTap(amqp_url, ["job.state.aborted"]) as tap:
        await bus.publish(submitted("55555555-5555-4555-8555-555555555555", app="caesar"))
        aborted = await tap.wait_for(lambda e: True)
    assert "no runner pool" in aborted.data["reason"]
    assert "k8s" in aborted.data["reason"]


async def test_duplicate_submission_admits_once_and_repeats_the_decision(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    """The second copy (a re-announcement by the api) admits nothing new: it only publishes
    the QUEUED decision again, and one RunJob is sent."""
    job_id = "66666666-6666-4666-8666-666666666666"
    before = handled(SCHEDULER_QUEUE.name)
    async with EventTap(amqp_url, ["job.state.queued"]) as tap:
        envelope = submitted(job_id)
        await bus.publish(envelope)
        await bus.publish(envelope)
        await tap.wait_for(lambda e: True)
        # Both copies handled, what they emitted published, then a marker: all is in the tap.
        await eventually(lambda: handled(SCHEDULER_QUEUE.name) >= before + 2, what="both copies handled")
        assert await outbox_drained(scheduler.relay) == 0
        await tap.sync(bus.publish, marker())
        assert [e.subject for e in tap.received if e.source != "test-marker"] == [job_id, job_id]
    await bus.publish(heartbeat(4))
    assert len(await read_commands(amqp_url, 1)) == 1
    await round_saw(waiting=0, free=3)
    await nothing_more_sent(scheduler, amqp_url)


def lost(job_id: str, attempt: int) -> Envelope:
    return Envelope.wrap(
        JobStateChanged(
            job_id=job_id,
            owner="alice",
            app="aegean",
            attempt=attempt,
            state=JobState.FAILURE,
            reason="runner lost",
            retryable=True,
            changed_at=datetime.now(UTC),
        ),
        "monitor",
    )


async def test_lost_runner_is_retried_then_aborted(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    """Attempt 1 lost -> QUEUED attempt 2 and re-dispatched; attempt 2 lost -> ABORTED (limit 2)."""
    job_id = "77777777-7777-4777-8777-777777777777"
    before = handled(SCHEDULER_QUEUE.name)
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await bus.publish(submitted(job_id))
        await bus.publish(heartbeat(4))
        first = await read_commands(amqp_url, 1)
        assert first[0].attempt == 1

        await bus.publish(lost(job_id, 1))
        await bus.publish(lost(job_id, 1))  # a duplicate must not open a third attempt
        retry = await tap.wait_for(lambda e: e.data["state"] == "QUEUED" and e.data["attempt"] == 2)
        assert "runner lost" in retry.data["reason"]
        second = await read_commands(amqp_url, 1)
        assert [c.attempt for c in second] == [2]
        await round_saw(waiting=0, free=3)  # the duplicate opened no third attempt
        await nothing_more_sent(scheduler, amqp_url)

        await bus.publish(lost(job_id, 2))
        aborted = await tap.wait_for(lambda e: e.data["state"] == "ABORTED")
        assert aborted.data["attempt"] == 2
        assert "gave up after 2 attempts" in aborted.data["reason"]
        # All five messages handled, what they emitted published, then a marker.
        await eventually(lambda: handled(SCHEDULER_QUEUE.name) >= before + 5, what="all messages handled")
        assert await outbox_drained(scheduler.relay) == 0
        await tap.sync(bus.publish, marker())
    of_job = [e.data for e in tap.received if e.subject == job_id]
    assert [d["attempt"] for d in of_job if d["state"] == "QUEUED"] == [1, 2]


async def test_app_failure_is_not_retried(
    scheduler: ServiceRuntime[SchedulerSettings], bus: Bus, amqp_url: str
) -> None:
    job_id = "88888888-8888-4888-8888-888888888888"
    before = handled(SCHEDULER_QUEUE.name)
    async with EventTap(amqp_url, ["job.state.queued"]) as tap:
        await bus.publish(submitted(job_id))
        await bus.publish(heartbeat(4))
        await read_commands(amqp_url, 1)
        failure = JobStateChanged(
            job_id=job_id,
            owner="alice",
            app="aegean",
            attempt=1,
            state=JobState.FAILURE,
            exit_code=1,
            changed_at=datetime.now(UTC),
        )
        await bus.publish(Envelope.wrap(failure, "runner"))
        # The failure handled, what it emitted published, then a marker: no new attempt.
        await eventually(lambda: handled(SCHEDULER_QUEUE.name) >= before + 3, what="the failure handled")
        assert await outbox_drained(scheduler.relay) == 0
        await tap.sync(bus.publish, marker())
    assert [e.data["attempt"] for e in tap.received if e.subject == job_id] == [1]
    await round_saw(waiting=0, free=4)  # the slot is free again, and nothing waits for it
    await nothing_more_sent(scheduler, amqp_url)


async def test_a_heavy_backlog_at_cap_does_not_hide_a_light_users_job(
    scheduler_with: SchedulerFactory, bus: Bus, amqp_url: str
) -> None:
    """300 waiting jobs of a user at their cap, all older than a light user's one job, and
    each round reads at most 5 jobs of one owner: the light user's job takes the free slot.

    The backlog is written straight into the scheduler's database (admitting 300 jobs
    through the broker would only make the test slow); the light job is admitted normally.
    """
    scheduler = await scheduler_with(max_active_per_user=2, dispatch_fetch_per_owner=5)
    jobs = scheduler.collection(COLLECTION)
    base = datetime.now(UTC) - timedelta(hours=1)

    def heavy(i: int, **fields: Any) -> dict[str, Any]:
        doc = job_document(submission(f"heavy-{i:04d}", owner="heavy"), base, {})
        return {**doc, "pool": POOL, "state": "QUEUED", "queued_at": base + timedelta(seconds=i), **fields}

    # Two running (the cap), 300 waiting.
    await jobs.insert_many([heavy(i, phase="dispatched", state="RUNNING") for i in range(2)])
    await jobs.insert_many([heavy(i, phase="waiting") for i in range(2, 302)])
    light = "99999999-9999-4999-8999-999999999999"
    async with EventTap(amqp_url, ["job.state.queued"]) as tap:
        await bus.publish(submitted(light, owner="bob"))
        await tap.wait_for(lambda e: e.subject == light)
    await round_saw(waiting=301, free=0)  # every waiting job is seen, none sent yet
    await nothing_more_sent(scheduler, amqp_url)
    await bus.publish(heartbeat(3))  # one slot beyond the heavy user's two
    commands = await read_commands(amqp_url, 1)
    assert [(c.job_id, c.owner) for c in commands] == [(light, "bob")]
    await round_saw(waiting=300, free=0)
    await nothing_more_sent(scheduler, amqp_url)


async def test_a_run_job_no_runner_starts_is_sent_again_then_the_attempt_is_retried(
    scheduler_with: SchedulerFactory, bus: Bus, amqp_url: str
) -> None:
    """A fake runner takes the RunJob off the queue and drops it: after the start timeout
    the same command (attempt 1) is in the queue again; after the one re-send allowed, the
    attempt fails as never started and attempt 2 is dispatched.
    """
    scheduler = await scheduler_with(start_timeout_s=0.5, max_start_resends=1)
    job_id = "abababab-abab-4bab-8bab-abababababab"
    resends = sample("caesar_scheduler_start_resends_total", pool=POOL)
    async with EventTap(amqp_url, ["job.state.*"]) as tap:
        await bus.publish(submitted(job_id))
        await bus.publish(heartbeat(1))
        (dropped,) = await read_commands(amqp_url, 1)  # consumed, acked, never run
        (again,) = await read_commands(amqp_url, 1)
        assert again == dropped  # the same command: same job, attempt, pool and inputs
        assert again.attempt == 1
        assert sample("caesar_scheduler_start_resends_total", pool=POOL) == resends + 1

        failed = await tap.wait_for(lambda e: e.data["state"] == "FAILURE")
        assert (failed.data["attempt"], failed.data["retryable"]) == (1, True)
        assert "never started" in failed.data["reason"]
        retry = await tap.wait_for(lambda e: e.data["state"] == "QUEUED" and e.data["attempt"] == 2)
        assert "never started" in retry.data["reason"]
        (second,) = await read_commands(amqp_url, 1)
        assert (second.job_id, second.attempt) == (job_id, 2)
    doc = await scheduler.collection(COLLECTION).find_one({"_id": job_id})
    assert doc is not None
    assert (doc["phase"], doc["attempt"]) in {("dispatched", 2), ("finished", 2)}

"""The monitor on the real broker and database: timelines, watchdog, metrics, read API."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from caesar_common.bus import Bus, QueueSpec
from caesar_common.events import (
    Envelope,
    InputFile,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    Message,
    RunnerHeartbeat,
    RunningJobRef,
)
from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_common.periodic import run_every
from caesar_common.runtime import ServiceRuntime, add_operational_routes
from caesar_monitor.adapters.timelines import TIMELINES
from caesar_monitor.bootstrap import INDEXES, OUTBOX_COLLECTIONS, SERVICE, build, unbind_legacy_heartbeats
from caesar_monitor.domain.liveness import ATTEMPT_NOT_REPORTED
from caesar_monitor.entrypoints.consumer import HEARTBEAT_KEY, HEARTBEAT_QUEUE, MONITOR_QUEUE
from caesar_monitor.entrypoints.http import create_app
from caesar_monitor.settings import MonitorSettings
from tests.integration.conftest import ServiceStarter
from tests.integration.event_tap import EventTap, marker, outbox_drained
from tests.integration.service_support import eventually, handled, sample

pytestmark = pytest.mark.integration

RUNNER_TIMEOUT_S = 4.0  # generous: heartbeats are consumed late on a loaded 2-core machine
# Recent, whole seconds (the database keeps milliseconds): histories happen "just now".
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


MonitorFactory = Callable[..., Awaitable[ServiceRuntime[MonitorSettings]]]


@pytest.fixture
def make_monitor(
    amqp_url: str, mongo_url: str, db_prefix: str, start_service: ServiceStarter
) -> MonitorFactory:
    """Start the monitor (real consumer, loops, outbox relay) with test-sized clocks."""

    async def start(**overrides: Any) -> ServiceRuntime[MonitorSettings]:
        options: dict[str, Any] = {
            "runner_timeout_s": RUNNER_TIMEOUT_S,
            "watchdog_interval_s": 0.2,
            "wall_time_grace_s": 0.5,
            "metrics_interval_s": 0.2,
            "outbox_sweep_interval_s": 0.5,
            **overrides,
        }
        settings = MonitorSettings(
            amqp_url=amqp_url, mongo_url=mongo_url, mongo_db_prefix=db_prefix, http_port=0, **options
        )
        return await start_service(
            SERVICE, settings, build, indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS
        )

    return start


@pytest.fixture
async def monitor(make_monitor: MonitorFactory) -> ServiceRuntime[MonitorSettings]:
    return await make_monitor()


@pytest.fixture
async def patient_monitor(make_monitor: MonitorFactory) -> ServiceRuntime[MonitorSettings]:
    """A monitor whose watchdog never fires: for histories without heartbeats."""
    return await make_monitor(runner_timeout_s=3600, wall_time_grace_s=86400)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def state(job_id: str, app: str, s: JobState, t: float, attempt: int = 1, **kw: Any) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id, owner="alice", app=app, attempt=attempt, state=s, changed_at=at(t), **kw
    )


def submitted(job_id: str, app: str, *, wall_time_s: int = 600, when: datetime = T0) -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        owner="alice",
        app=app,
        params={},
        input=InputFile(file_id="a" * 32, ext="fits"),
        wall_time_s=wall_time_s,
        submitted_at=when,
    )


def retried_history(job_id: str, app: str) -> list[Message]:
    """Runner lost on attempt 1, success on attempt 2, with a cancel request on the way."""
    r1: dict[str, Any] = {"runner_id": "r1", "pool": "local"}
    r2: dict[str, Any] = {"runner_id": "r2", "pool": "local"}
    return [
        submitted(job_id, app),
        state(job_id, app, JobState.QUEUED, 1),
        state(job_id, app, JobState.STARTED, 3, **r1),
        state(job_id, app, JobState.RUNNING, 4, **r1),
        state(job_id, app, JobState.FAILURE, 40, retryable=True, reason="runner lost", **r1),
        state(job_id, app, JobState.QUEUED, 45, attempt=2),
        JobCancelRequested(job_id=job_id, owner="alice", requested_at=at(47)),
        state(job_id, app, JobState.STARTED, 50, attempt=2, **r2),
        state(job_id, app, JobState.RUNNING, 51, attempt=2, **r2),
        state(job_id, app, JobState.SUCCESS, 80, attempt=2, exit_code=0, elapsed_s=29.0, **r2),
    ]


async def timeline_doc(runtime: ServiceRuntime[MonitorSettings], job_id: str) -> dict[str, Any] | None:
    return await runtime.collection(TIMELINES).find_one({"_id": job_id})


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A timeline without what differs between two jobs with the same history."""
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["events"] = [{k: v for k, v in e.items() if k != "event_id"} for e in doc["events"]]
    return out


async def test_shuffled_duplicated_events_build_the_in_order_timeline(
    patient_monitor: ServiceRuntime[MonitorSettings], bus: Bus
) -> None:
    monitor = patient_monitor
    app = f"app-{uuid.uuid4().hex[:8]}"
    in_order, shuffled = new_job_id(), new_job_id()
    wait_before = sample("caesar_job_queue_wait_seconds_count", app=app)
    run_before = sample("caesar_job_run_seconds_count", app=app)
    handled_before = handled(MONITOR_QUEUE.name)

    # Reference: one event at a time, each applied before the next is sent.
    history = retried_history(in_order, app)
    for n, message in enumerate(history, start=1):
        await bus.publish(Envelope.wrap(message, "test"))

        async def applied(n: int = n) -> bool:
            doc = await timeline_doc(monitor, in_order)
            return doc is not None and len(doc["events"]) == n

        await eventually(applied)

    envelopes = [Envelope.wrap(m, "test") for m in retried_history(shuffled, app)]
    disorder = random.Random(20260504)  # fixed: a failure reproduces
    storm = envelopes + disorder.sample(envelopes, 6)  # every duplicate is the same event id
    disorder.shuffle(storm)
    for envelope in storm:
        await bus.publish(envelope)

    # Every message sent, duplicates included, handled and acked: nothing is in flight
    # any more that could still change the timeline.
    sent = len(history) + len(storm)

    def all_handled() -> bool:
        return handled(MONITOR_QUEUE.name) >= handled_before + sent

    await eventually(all_handled, what="every message handled")

    reference = await timeline_doc(monitor, in_order)
    result = await timeline_doc(monitor, shuffled)
    assert reference is not None
    assert result is not None
    assert comparable(result) == comparable(reference)
    assert (reference["state"], reference["attempt"], reference["retryable"]) == ("SUCCESS", 2, False)
    assert (reference["runner_id"], reference["pool"]) == ("r2", "local")
    assert reference["started_at"] == at(50)
    assert reference["queued_at"] == at(45)
    assert reference["wall_time_s"] == 600
    assert [e["state"] for e in reference["events"]] == [
        "PENDING",
        "QUEUED",
        "STARTED",
        "RUNNING",
        "FAILURE",
        "QUEUED",
        None,
        "STARTED",
        "RUNNING",
        "SUCCESS",
    ]
    # The reference saw every QUEUED before its STARTED: one wait and one run per attempt.
    assert sample("caesar_job_queue_wait_seconds_count", app=app) - wait_before >= 2
    assert sample("caesar_job_run_seconds_count", app=app) - run_before >= 2

    # A recount counts state after state, so one that runs while the last events land
    # may see a job twice (RUNNING, then SUCCESS); the next recount is exact.
    async def gauge_counts_both_done() -> bool:
        return sample("caesar_jobs", state="SUCCESS") == 2 and sample("caesar_jobs", state="RUNNING") == 0

    await eventually(gauge_counts_both_done)


async def test_timeline_read_api(patient_monitor: ServiceRuntime[MonitorSettings], bus: Bus) -> None:
    monitor = patient_monitor
    job_id = new_job_id()
    for message in retried_history(job_id, "caesar")[:4]:
        await bus.publish(Envelope.wrap(message, "test"))

    async def four_entries() -> bool:
        doc = await timeline_doc(monitor, job_id)
        return doc is not None and len(doc["events"]) == 4

    await eventually(four_entries)
    app = create_app()
    add_operational_routes(app, monitor)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url(f"/jobs/{job_id}/timeline")) as resp:
            assert resp.status == 200
            body = await resp.json()
        async with http.get(server.make_url(f"/jobs/{new_job_id()}/timeline")) as resp:
            assert resp.status == 404
        async with http.get(server.make_url("/jobs/..%2Fetc/timeline")) as resp:
            assert resp.status == 400
    assert [e["state"] for e in body] == ["PENDING", "QUEUED", "STARTED", "RUNNING"]
    assert body[2]["runner_id"] == "r1"
    assert body[2]["time"] == at(3).isoformat()
    assert set(body[0]) == {
        "event_id",
        "type",
        "state",
        "attempt",
        "time",
        "reason",
        "runner_id",
        "exit_code",
    }


def heartbeat(runner_id: str, pool: str, running: list[str], *, total: int = 4, free: int = 1) -> Envelope:
    return Envelope.wrap(
        RunnerHeartbeat(
            runner_id=runner_id,
            pool=pool,
            slots_total=total,
            slots_free=free,
            running=[RunningJobRef(job_id=j, attempt=1) for j in running],
            sent_at=datetime.now(UTC),
        ),
        "test",
    )


async def start_job(bus: Bus, job_id: str, runner_id: str, *, wall_time_s: int = 600) -> None:
    now = datetime.now(UTC)
    messages: list[Message] = [
        submitted(job_id, "caesar", wall_time_s=wall_time_s, when=now),
        JobStateChanged(
            job_id=job_id, owner="alice", app="caesar", attempt=1, state=JobState.QUEUED, changed_at=now
        ),
        JobStateChanged(
            job_id=job_id,
            owner="alice",
            app="caesar",
            attempt=1,
            state=JobState.RUNNING,
            changed_at=now,
            runner_id=runner_id,
            pool="local",
        ),
    ]
    for message in messages:
        await bus.publish(Envelope.wrap(message, "test"))


async def test_watchdog_fails_jobs_of_silent_runners_only(
    monitor: ServiceRuntime[MonitorSettings], bus: Bus, amqp_url: str
) -> None:
    lost, alive, overtime, later = new_job_id(), new_job_id(), new_job_id(), new_job_id()

    async def beat() -> None:
        await bus.publish(heartbeat("r-alive", "local", [alive, overtime]))

    async with EventTap(amqp_url, ["job.state.failure", "job.state.timed-out"]) as tap:
        # A live runner: a heartbeat every 0.2 s (a cadence, as a runner's, not a wait).
        beats = asyncio.ensure_future(run_every(0.2, beat, "test heartbeat", first_after_s=0))
        try:
            await start_job(bus, lost, "r-dead")
            await start_job(bus, alive, "r-alive")
            await start_job(bus, overtime, "r-alive", wall_time_s=1)

            failure = await tap.wait_for(lambda e: e.subject == lost)
            assert failure.data["state"] == "FAILURE"
            assert failure.data["reason"] == "runner lost"
            assert failure.data["retryable"] is True
            assert failure.data["attempt"] == 1
            assert failure.data["runner_id"] == "r-dead"
            assert failure.source == "monitor"

            timed_out = await tap.wait_for(lambda e: e.subject == overtime)
            assert timed_out.data["state"] == "TIMED-OUT"
            assert timed_out.data["reason"] == "wall time exceeded (monitor)"
            assert timed_out.data["retryable"] is False

            # Heartbeats keep coming: well past the timeout, the live runner's job stays.
            # Marker: a job of another silent runner, started after ``lost`` was declared
            # lost, hence more than a timeout after ``alive`` started. The sweep that ends
            # it judges ``alive`` too, at two timeouts after its start; had the heartbeats
            # not counted, ``alive`` would have been ended by an earlier sweep.
            await start_job(bus, later, "r-dead-too")
            verdict = await tap.wait_for(lambda e: e.subject == later, timeout_s=RUNNER_TIMEOUT_S + 10)
            assert verdict.data["reason"] == "runner lost"
            assert not [e for e in tap.received if e.subject == alive]
            doc = await timeline_doc(monitor, alive)
            assert doc is not None
            assert doc["state"] == "RUNNING"
        finally:
            beats.cancel()
            with suppress(asyncio.CancelledError):
                await beats

        # Once they stop, that job is declared lost too.
        stopped = await tap.wait_for(lambda e: e.subject == alive, timeout_s=RUNNER_TIMEOUT_S + 10)
        assert stopped.data["reason"] == "runner lost"

        doc = await timeline_doc(monitor, lost)
        assert doc is not None
        assert (doc["state"], doc["attempt"], doc["retryable"]) == ("FAILURE", 1, True)
        assert doc["events"][-1]["event_id"] == failure.id  # appended with the state change
        assert [e["event_id"] for e in doc["events"]].count(failure.id) == 1  # its echo is a duplicate
        assert await outbox_drained(monitor.relay) == 0
        # Exactly one verdict per job, despite many watchdog passes: every verdict stored
        # is published (the outbox is empty), so all of them are in the tap before a
        # marker published now (a FAILURE of an unknown job: the watchdog ignores it).
        await tap.sync(bus.publish, marker(JobState.FAILURE))
    assert sum(1 for e in tap.received if e.subject == lost) == 1


async def test_runner_slot_gauges_and_event_lag(monitor: ServiceRuntime[MonitorSettings], bus: Bus) -> None:
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    lag_before = sample("caesar_event_lag_seconds_count")
    await bus.publish(heartbeat("ra", pool, [], total=4, free=1))
    await bus.publish(heartbeat("rb", pool, [], total=2, free=2))

    async def summed() -> bool:
        return (
            sample("caesar_runner_slots", pool=pool, kind="total") == 6
            and sample("caesar_runner_slots", pool=pool, kind="free") == 3
        )

    await eventually(summed)
    assert sample("caesar_event_lag_seconds_count") - lag_before >= 2

    # Silent runners drop out of the capacity once timed out.
    async def gone() -> bool:
        return REGISTRY.get_sample_value("caesar_runner_slots", {"pool": pool, "kind": "total"}) is None

    await eventually(gone, timeout_s=RUNNER_TIMEOUT_S + 5)


async def test_live_runner_without_the_attempt_fails_it_and_one_listing_it_keeps_it(
    monitor: ServiceRuntime[MonitorSettings], bus: Bus, amqp_url: str
) -> None:
    """A runner that heartbeats but has lost an attempt (its task died, its final write was
    lost) gets the attempt failed as retryable; the attempt it lists is left alone."""
    runner = f"r-{uuid.uuid4().hex[:8]}"
    kept, forgotten, later = new_job_id(), new_job_id(), new_job_id()
    beats_before = handled(HEARTBEAT_QUEUE.name)

    async def beat() -> None:
        await bus.publish(heartbeat(runner, "local", [kept]))

    async with EventTap(amqp_url, ["job.state.failure", "job.state.timed-out"]) as tap:
        beats = asyncio.ensure_future(run_every(0.2, beat, "test heartbeat", first_after_s=0))
        try:
            # ``kept`` starts first: had its listing not counted, it would be judged no
            # later than ``forgotten``, by the same runner's same heartbeats.
            await start_job(bus, kept, runner)
            await start_job(bus, forgotten, runner)

            failure = await tap.wait_for(lambda e: e.subject == forgotten, timeout_s=RUNNER_TIMEOUT_S + 15)
            assert failure.data["state"] == "FAILURE"
            assert failure.data["reason"] == ATTEMPT_NOT_REPORTED
            assert failure.data["retryable"] is True
            assert (failure.data["attempt"], failure.data["runner_id"]) == (1, runner)
            assert failure.source == "monitor"
            assert handled(HEARTBEAT_QUEUE.name) > beats_before  # heartbeats on their own queue

            # Marker: a job of a silent runner started now is ended by a later watchdog
            # pass than the one that ended ``forgotten`` (which judged ``kept`` too).
            await start_job(bus, later, f"r-dead-{uuid.uuid4().hex[:8]}")
            verdict = await tap.wait_for(lambda e: e.subject == later, timeout_s=RUNNER_TIMEOUT_S + 15)
            assert verdict.data["reason"] == "runner lost"
            doc = await timeline_doc(monitor, kept)
            assert doc is not None
            assert doc["state"] == "RUNNING"
        finally:
            beats.cancel()
            with suppress(asyncio.CancelledError):
                await beats
        assert await outbox_drained(monitor.relay) == 0
        await tap.sync(bus.publish, marker(JobState.FAILURE))
    assert not [e for e in tap.received if e.subject == kept]
    assert sum(1 for e in tap.received if e.subject == forgotten) == 1
    doc = await timeline_doc(monitor, forgotten)
    assert doc is not None
    assert (doc["state"], doc["attempt"], doc["retryable"]) == ("FAILURE", 1, True)


async def test_legacy_heartbeat_binding_of_monitor_events_is_removed(bus: Bus) -> None:
    """A ``monitor.events`` declared by an earlier version (heartbeats bound) loses that
    binding: job events still reach it, heartbeats no longer do."""
    legacy = QueueSpec(MONITOR_QUEUE.name, bindings=(*MONITOR_QUEUE.bindings, HEARTBEAT_KEY))
    await bus.declare(legacy)
    await unbind_legacy_heartbeats(bus)
    await unbind_legacy_heartbeats(bus)  # idempotent
    await bus.publish(heartbeat("r-legacy", "local", []))
    job_event = marker(JobState.QUEUED)
    await bus.publish(job_event)  # confirmed after the heartbeat: FIFO behind it if routed
    channel = await bus.connection.channel()
    try:
        queue = await channel.get_queue(MONITOR_QUEUE.name)
        first = await queue.get(timeout=5)
        assert first is not None
        assert Envelope.from_bytes(first.body).id == job_event.id
        await first.ack()
        assert await queue.get(fail=False) is None
    finally:
        await channel.close()

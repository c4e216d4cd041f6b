"""The monitor's handlers and watchdog against in-memory fakes (no broker, no database)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

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
from caesar_common.jobstate import JobState
from caesar_common.message_router import route_by_type
from caesar_monitor.domain.liveness import ATTEMPT_NOT_REPORTED
from caesar_monitor.handlers import HANDLERS, on_batch
from caesar_monitor.service.deps import MonitorDeps
from caesar_monitor.service.gauges import refresh_gauges
from caesar_monitor.service.watchdog import sweep
from caesar_monitor.settings import MonitorSettings
from tests.unit.fakes.monitor import FakeRunnerStore, FakeTimelineStore
from tests.unit.fakes.scheduler import Kicks

JOB = "11111111-1111-4111-8111-111111111111"
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Monitor:
    """The monitor's handlers wired to fakes, with a clock the test moves."""

    def __init__(self) -> None:
        self.now = at(0)
        self.timelines = FakeTimelineStore()
        self.runners = FakeRunnerStore()
        self.kicks = Kicks()
        self.deps = MonitorDeps(
            timelines=self.timelines,
            runners=self.runners,
            settings=MonitorSettings(runner_timeout_s=30, wall_time_grace_s=60),
            kick=self.kicks,
            clock=lambda: self.now,
            watching_since=at(-3600),
        )
        self._route = route_by_type(HANDLERS, self.deps)

    async def send(self, envelope: Envelope) -> None:
        await self._route(envelope)


def submitted(app: str = "sfind") -> JobSubmitted:
    return JobSubmitted(
        job_id=JOB,
        owner="alice",
        app=app,
        params={},
        input=InputFile(file_id="a" * 32, ext="fits"),
        wall_time_s=600,
        submitted_at=at(0),
    )


def state(s: JobState, t: float, attempt: int = 1, **kw: Any) -> JobStateChanged:
    return JobStateChanged(
        job_id=JOB, owner="alice", app="sfind", attempt=attempt, state=s, changed_at=at(t), **kw
    )


def history() -> list[Message]:
    r1: dict[str, Any] = {"runner_id": "r1", "pool": "local"}
    return [
        submitted(),
        state(JobState.QUEUED, 1),
        state(JobState.STARTED, 3, **r1),
        JobCancelRequested(job_id=JOB, owner="alice", requested_at=at(4)),
        state(JobState.RUNNING, 5, **r1),
        state(JobState.SUCCESS, 9, exit_code=0, **r1),
    ]


async def test_shuffled_duplicated_history_gives_the_in_order_timeline() -> None:
    envelopes = [Envelope.wrap(m, "test") for m in history()]
    in_order, shuffled = Monitor(), Monitor()
    for envelope in envelopes:
        await in_order.send(envelope)
    storm = envelopes * 2
    random.Random(7).shuffle(storm)
    for envelope in storm:
        await shuffled.send(envelope)
    reference, result = in_order.timelines.docs[JOB], shuffled.timelines.docs[JOB]
    assert result == reference
    assert (reference["state"], reference["attempt"], reference["runner_id"]) == ("SUCCESS", 1, "r1")
    assert reference["started_at"] == at(3)
    assert [e["state"] for e in reference["events"]] == [
        "PENDING",
        "QUEUED",
        "STARTED",
        None,
        "RUNNING",
        "SUCCESS",
    ]


async def test_batches_give_the_timeline_one_by_one_gives() -> None:
    """Shuffled, duplicated events cut into batches (one read, one write each) or sent
    one at a time: the same timeline, for several seeds and batch sizes."""
    envelopes = [Envelope.wrap(m, "test") for m in history()]
    reference = Monitor()
    for envelope in envelopes:
        await reference.send(envelope)
    for seed in range(20):
        rng = random.Random(seed)
        storm = envelopes * 2
        rng.shuffle(storm)
        size = rng.randint(1, len(storm))
        batched = Monitor()
        for start in range(0, len(storm), size):
            await on_batch(storm[start : start + size], batched.deps)
        assert batched.timelines.docs[JOB] == reference.timelines.docs[JOB], (seed, size)


async def test_a_batch_whose_timeline_moved_meanwhile_is_recorded_one_by_one() -> None:
    m = Monitor()
    for message in history()[:2]:
        await m.send(Envelope.wrap(message, "test"))
    real_move_many = m.timelines.move_many
    started = Envelope.wrap(history()[2], "test")

    async def racing_move_many(moves: Any) -> set[str]:
        await m.send(started)  # another replica records STARTED between read and write
        return await real_move_many(moves)

    m.timelines.move_many = racing_move_many  # type: ignore[method-assign]
    await on_batch([started, Envelope.wrap(history()[4], "test")], m.deps)
    doc = m.timelines.docs[JOB]
    assert doc["state"] == "RUNNING"
    assert [e["state"] for e in doc["events"]] == ["PENDING", "QUEUED", "STARTED", "RUNNING"]


async def test_heartbeats_set_the_slot_gauges_per_pool() -> None:
    m = Monitor()
    for runner, total, free in (("ra", 4, 1), ("rb", 2, 2)):
        beat = RunnerHeartbeat(
            runner_id=runner, pool="fake-pool", slots_total=total, slots_free=free, sent_at=m.now
        )
        await m.send(Envelope.wrap(beat, "test"))
    assert REGISTRY.get_sample_value("caesar_runner_slots", {"pool": "fake-pool", "kind": "total"}) == 6
    assert REGISTRY.get_sample_value("caesar_runner_slots", {"pool": "fake-pool", "kind": "free"}) == 3


async def test_watchdog_ends_the_job_of_a_silent_runner_once() -> None:
    m = Monitor()
    for message in history()[:3]:
        await m.send(Envelope.wrap(message, "test"))
    beat = RunnerHeartbeat(runner_id="r1", pool="local", slots_total=1, slots_free=0, sent_at=at(3))
    await m.send(Envelope.wrap(beat, "test"))
    assert await sweep(m.deps) == []  # heard from just now
    m.now = at(3 + 31)
    verdicts = await sweep(m.deps)
    assert [(v.job.job_id, v.state) for v in verdicts] == [(JOB, JobState.FAILURE)]
    assert await sweep(m.deps) == []  # already ended: no second verdict
    (event,) = m.timelines.outbox
    assert (event.data["state"], event.data["retryable"], event.data["runner_id"]) == ("FAILURE", True, "r1")
    assert m.kicks.ids == [JOB]
    doc = m.timelines.docs[JOB]
    assert (doc["state"], doc["retryable"]) == ("FAILURE", True)
    assert doc["events"][-1]["event_id"] == event.id


async def test_watchdog_waits_while_the_broker_is_away() -> None:
    m = Monitor()
    for message in history()[:3]:
        await m.send(Envelope.wrap(message, "test"))
    m.now = at(3600)
    m.deps.broker_connected = lambda: False
    assert await sweep(m.deps) == []


# The runner's clock is behind the monitor's (kept well within the job's wall time, which
# the monitor checks against its own clock).
SKEW = timedelta(seconds=-90)


def beat(sent_s: float, *running: int, runner_id: str = "r1") -> Envelope:
    """A heartbeat of ``runner_id`` sent at ``at(sent_s)`` on its own (skewed) clock,
    listing the given attempts of JOB."""
    return Envelope.wrap(
        RunnerHeartbeat(
            runner_id=runner_id,
            pool="local",
            slots_total=2,
            slots_free=2 - len(running),
            running=[RunningJobRef(job_id=JOB, attempt=a) for a in running],
            sent_at=at(sent_s) + SKEW,
        ),
        "test",
    )


async def started_on_runner_clock(m: Monitor, t: float) -> None:
    """JOB submitted and queued, then STARTED and RUNNING at ``t`` by r1 (its clock)."""
    r1: dict[str, Any] = {"runner_id": "r1", "pool": "local"}
    for message in (
        submitted(),
        state(JobState.QUEUED, 1),
        JobStateChanged(
            job_id=JOB,
            owner="alice",
            app="sfind",
            attempt=1,
            state=JobState.STARTED,
            **r1,
            changed_at=at(t) + SKEW,
        ),
        JobStateChanged(
            job_id=JOB,
            owner="alice",
            app="sfind",
            attempt=1,
            state=JobState.RUNNING,
            **r1,
            changed_at=at(t) + SKEW,
        ),
    ):
        await m.send(Envelope.wrap(message, "test"))


async def heartbeats_until(m: Monitor, last_s: float, *running: int, every_s: float = 5) -> None:
    """A live runner heartbeating every ``every_s`` up to ``last_s``; the monitor's clock
    follows (each heartbeat is consumed as it is sent)."""
    t = 0.0
    while t <= last_s:
        m.now = at(t)
        await m.send(beat(t, *running))
        t += every_s


async def test_live_runner_listing_the_attempt_keeps_it() -> None:
    m = Monitor()
    await started_on_runner_clock(m, 3)
    await heartbeats_until(m, 300, 1)
    assert await sweep(m.deps) == []
    assert m.timelines.docs[JOB]["state"] == "RUNNING"


async def test_live_runner_that_never_lists_the_attempt_loses_it_after_the_grace() -> None:
    m = Monitor()
    await started_on_runner_clock(m, 3)
    await heartbeats_until(m, 30)  # heartbeats at 5..30 leave it out: 27 s, within 30
    assert await sweep(m.deps) == []
    await heartbeats_until(m, 35)  # ... 32 s beyond its start
    [verdict] = await sweep(m.deps)
    assert (verdict.state, verdict.reason, verdict.retryable) == (
        JobState.FAILURE,
        ATTEMPT_NOT_REPORTED,
        True,
    )
    (event,) = m.timelines.outbox
    assert (event.data["state"], event.data["retryable"], event.data["attempt"]) == ("FAILURE", True, 1)
    assert event.data["reason"] == ATTEMPT_NOT_REPORTED
    assert m.kicks.ids == [JOB]
    assert await sweep(m.deps) == []  # one verdict


async def test_dropped_attempt_is_lost_a_timeout_after_it_left_the_heartbeats() -> None:
    """The attempt's task died at 300: it was listed until then, and not after."""
    m = Monitor()
    await started_on_runner_clock(m, 3)
    await heartbeats_until(m, 300, 1)
    for t in (305.0, 310.0, 320.0, 330.0, 335.0):  # left out since 305: at most 30 s
        m.now = at(t)
        await m.send(beat(t))
        assert await sweep(m.deps) == []
    m.now = at(340)
    await m.send(beat(340))
    [verdict] = await sweep(m.deps)
    assert verdict.reason == ATTEMPT_NOT_REPORTED


async def test_older_heartbeat_does_not_replace_a_newer_one() -> None:
    m = Monitor()
    await started_on_runner_clock(m, 3)
    await heartbeats_until(m, 40, 1)
    m.now = at(41)
    await m.send(beat(4))  # overtaken (it waited in a queue): it must not count
    assert m.runners.docs["r1"]["report"].running == {(JOB, 1)}
    assert await sweep(m.deps) == []


async def test_two_replicas_sweeping_at_once_emit_one_verdict() -> None:
    """Both replicas judge the attempt lost; the guarded write lets one of them end it."""
    m = Monitor()
    await started_on_runner_clock(m, 3)
    await heartbeats_until(m, 60)
    other = MonitorDeps(
        timelines=m.timelines,
        runners=m.runners,
        settings=m.deps.settings,
        kick=m.kicks,
        clock=lambda: m.now,
        watching_since=m.deps.watching_since,
    )
    first, second = await asyncio.gather(sweep(m.deps), sweep(other))
    assert len(first) + len(second) == 1
    assert len(m.timelines.outbox) == 1
    assert m.kicks.ids == [JOB]
    assert [e["state"] for e in m.timelines.docs[JOB]["events"]].count("FAILURE") == 1


async def test_runners_silent_for_a_day_are_forgotten() -> None:
    """Every runner restart has a new id: the runners collection must not grow forever."""
    m = Monitor()
    for runner in ("old", "new"):
        beat = RunnerHeartbeat(runner_id=runner, pool="fake-pool", slots_total=1, slots_free=1, sent_at=m.now)
        await m.send(Envelope.wrap(beat, "test"))
    m.runners.docs["old"]["last_seen"] = m.now - timedelta(days=2)
    await refresh_gauges(m.timelines, m.runners, m.now, runner_timeout_s=30)
    assert set(m.runners.docs) == {"new"}

"""The monitor's handlers and watchdog against in-memory fakes (no broker, no database)."""

from __future__ import annotations

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
)
from caesar_common.jobstate import JobState
from caesar_common.message_router import route_by_type
from caesar_monitor.handlers import HANDLERS
from caesar_monitor.service.deps import MonitorDeps
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

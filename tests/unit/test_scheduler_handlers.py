"""The scheduler's handlers and use cases against in-memory fakes (no broker, no database)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caesar_common.bus import runner_pool_queue
from caesar_common.events import (
    RUNNER_SOURCE,
    Envelope,
    InputFile,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    Message,
    OutputFile,
    RunnerHeartbeat,
)
from caesar_common.jobstate import JobState
from caesar_common.message_router import route_by_type
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.phases import DISPATCHED, FINISHED, WAITING
from caesar_scheduler.domain.retry import RetryPolicy
from caesar_scheduler.domain.routing import PoolRule
from caesar_scheduler.handlers import HANDLERS, SchedulerDeps, on_batch
from caesar_scheduler.service.dispatch import dispatch_once
from tests.unit.fakes.scheduler import FakeJobStore, Kicks, Wakes

JOB = "11111111-1111-4111-8111-111111111111"


class Scheduler:
    """The scheduler's handlers wired to fakes, fed envelopes as the bus would."""

    def __init__(self, pools: list[str] | None = None, rules: list[PoolRule] | None = None) -> None:
        self.jobs = FakeJobStore()
        self.kicks = Kicks()
        self.wakes = Wakes()
        self.deps = SchedulerDeps(
            jobs=self.jobs,
            kick=self.kicks,
            capacity=CapacityTable(timedelta(hours=2)),  # outlives the clock jump in dispatch()
            pools=pools or ["local"],
            wake_dispatcher=self.wakes,
            rules=rules or [],
            retry=RetryPolicy(max_attempts=2, backoff_s=5.0),
        )
        self._route = route_by_type(HANDLERS, self.deps)

    async def send(self, message: Message, source: str = "test") -> None:
        await self._route(Envelope.wrap(message, source))

    async def dispatch(self) -> int:
        return await dispatch_once(
            self.jobs,
            self.deps.capacity,
            self.kicks,
            self.deps.pools,
            now=datetime.now(UTC) + timedelta(hours=1),
        )


def submitted(app: str = "aegean", size_bytes: int = 0, job_id: str = JOB) -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        owner="alice",
        app=app,
        params={},
        input=InputFile(file_id="a" * 32, ext="fits", size_bytes=size_bytes),
        wall_time_s=60,
        submitted_at=datetime.now(UTC),
    )


def reported(state: JobState, attempt: int = 1, *, retryable: bool = False) -> JobStateChanged:
    return JobStateChanged(
        job_id=JOB,
        owner="alice",
        app="aegean",
        attempt=attempt,
        state=state,
        retryable=retryable,
        reason="runner lost" if retryable else "",
        changed_at=datetime.now(UTC),
    )


def heartbeat(slots: int, pool: str = "local") -> RunnerHeartbeat:
    return RunnerHeartbeat(
        runner_id="r1", pool=pool, slots_total=slots, slots_free=slots, sent_at=datetime.now(UTC)
    )


def cancel() -> JobCancelRequested:
    return JobCancelRequested(job_id=JOB, owner="alice", requested_at=datetime.now(UTC))


async def test_submission_is_queued_and_wakes_the_dispatcher() -> None:
    s = Scheduler()
    await s.send(submitted())
    assert s.jobs.states() == [("QUEUED", 1)]
    assert s.jobs.docs[JOB]["phase"] == WAITING
    assert s.jobs.docs[JOB]["pool"] == "local"
    assert s.kicks.ids == [JOB]
    assert s.wakes.count == 1


async def test_duplicate_submission_changes_nothing_but_announces_the_decision_again() -> None:
    """A re-announced submission (the api still shows PENDING) heals a lost QUEUED."""
    s = Scheduler()
    await s.send(submitted())
    await s.send(submitted())
    assert s.jobs.states() == [("QUEUED", 1), ("QUEUED", 1)]
    assert s.jobs.docs[JOB]["phase"] == WAITING
    assert s.wakes.count == 1


async def test_a_submission_seen_again_once_a_runner_reports_is_not_answered() -> None:
    """Runner states carry measurements only the runner has: the scheduler never re-sends them."""
    s = Scheduler()
    await s.send(submitted())
    s.jobs.docs[JOB]["state"] = "RUNNING"
    await s.send(submitted())
    assert s.jobs.states() == [("QUEUED", 1)]


async def test_an_app_no_pool_can_run_is_aborted_with_the_reason() -> None:
    s = Scheduler()
    await s.send(submitted(app="caesar"))
    assert s.jobs.states() == [("ABORTED", 1)]
    assert "no runner pool" in s.jobs.events[0].data["reason"]
    assert s.jobs.docs[JOB]["phase"] == FINISHED


async def test_pool_rules_route_big_images() -> None:
    rules = [PoolRule(pool="slurm", min_image_bytes=1000)]
    s = Scheduler(pools=["local", "slurm"], rules=rules)
    await s.send(submitted(size_bytes=1000))
    await s.send(submitted(size_bytes=999, job_id="22222222-2222-4222-8222-222222222222"))
    assert [e.data["pool"] for e in s.jobs.events] == ["slurm", "local"]


async def test_cancel_of_a_waiting_job_cancels_it_and_it_is_never_dispatched() -> None:
    s = Scheduler()
    await s.send(submitted())
    await s.send(cancel())
    await s.send(heartbeat(4))
    assert s.jobs.states() == [("QUEUED", 1), ("CANCELED", 1)]
    assert await s.dispatch() == 0


async def test_cancel_overtaking_its_submission_still_cancels() -> None:
    s = Scheduler()
    await s.send(cancel())
    await s.send(submitted())
    assert s.jobs.states() == [("CANCELED", 1)]
    assert s.jobs.docs[JOB]["phase"] == FINISHED
    assert s.wakes.count == 0


async def test_heartbeat_gives_capacity_and_dispatch_sends_run_job_to_the_pool_queue() -> None:
    s = Scheduler()
    await s.send(submitted())
    assert await s.dispatch() == 0  # no runner yet
    await s.send(heartbeat(1))
    assert s.wakes.count == 2
    assert await s.dispatch() == 1
    (command, queue), *_ = s.jobs.commands
    assert queue == runner_pool_queue("local")
    assert (command.data["job_id"], command.data["attempt"], command.data["pool"]) == (JOB, 1, "local")
    assert s.jobs.docs[JOB]["phase"] == DISPATCHED
    assert await s.dispatch() == 0  # the slot is taken


async def test_terminal_state_frees_the_slot() -> None:
    s = Scheduler()
    await s.send(submitted())
    await s.send(heartbeat(1))
    await s.dispatch()
    wakes = s.wakes.count
    await s.send(reported(JobState.RUNNING))
    assert s.wakes.count == wakes
    await s.send(reported(JobState.SUCCESS))
    assert s.wakes.count == wakes + 1
    assert (s.jobs.docs[JOB]["phase"], s.jobs.docs[JOB]["state"]) == (FINISHED, "SUCCESS")


async def test_lost_runner_is_retried_once_then_the_job_is_aborted() -> None:
    s = Scheduler()
    await s.send(submitted())
    await s.send(heartbeat(4))
    await s.dispatch()
    before = datetime.now(UTC)
    await s.send(reported(JobState.FAILURE, retryable=True))
    await s.send(reported(JobState.FAILURE, retryable=True))  # a duplicate opens nothing
    doc = s.jobs.docs[JOB]
    assert (doc["phase"], doc["attempt"], doc["state"]) == (WAITING, 2, "QUEUED")
    assert doc["queued_at"] >= before + timedelta(seconds=5)  # the backoff
    assert await s.dispatch() == 1
    assert s.jobs.commands[-1][0].data["attempt"] == 2
    await s.send(reported(JobState.FAILURE, attempt=2, retryable=True))
    assert s.jobs.states() == [("QUEUED", 1), ("QUEUED", 2), ("ABORTED", 2)]
    assert "gave up after 2 attempts" in s.jobs.events[-1].data["reason"]


async def test_an_app_failure_is_not_retried() -> None:
    s = Scheduler()
    await s.send(submitted())
    await s.send(heartbeat(4))
    await s.dispatch()
    await s.send(reported(JobState.FAILURE))
    assert s.jobs.states() == [("QUEUED", 1)]
    assert (s.jobs.docs[JOB]["phase"], s.jobs.docs[JOB]["state"]) == (FINISHED, "FAILURE")


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.HELD])
async def test_our_own_states_coming_back_are_ignored(state: JobState) -> None:
    s = Scheduler()
    await s.send(submitted())
    await s.send(reported(state, attempt=2))
    assert s.jobs.docs[JOB]["attempt"] == 1


async def test_a_stale_report_does_not_move_the_job_back() -> None:
    s = Scheduler()
    await s.send(submitted())
    await s.send(heartbeat(4))
    await s.dispatch()
    await s.send(reported(JobState.RUNNING))
    await s.send(reported(JobState.STARTED))
    assert s.jobs.docs[JOB]["state"] == "RUNNING"


async def lost_and_retried(s: Scheduler, *, dispatch_retry: bool) -> None:
    """Attempt 1 runs, is presumed lost, and attempt 2 is opened (and sent, if asked)."""
    await s.send(submitted())
    await s.send(heartbeat(4))
    await s.dispatch()
    await s.send(reported(JobState.RUNNING), RUNNER_SOURCE)
    await s.send(reported(JobState.FAILURE, retryable=True), "monitor")
    if dispatch_retry:
        assert await s.dispatch() == 1
    assert (s.jobs.docs[JOB]["attempt"], s.jobs.docs[JOB]["state"]) == (2, "QUEUED")


def true_outcome(state: JobState = JobState.SUCCESS) -> JobStateChanged:
    """Attempt 1's own report, which the runners' fence lets through only before attempt 2 starts."""
    outputs = [OutputFile(name="catalog.fits", size_bytes=10)]
    return reported(state).model_copy(update={"exit_code": 0, "outputs": outputs, "runner_id": "r1"})


@pytest.mark.parametrize("dispatched", [False, True], ids=["waiting", "dispatched"])
async def test_a_slow_attempts_true_outcome_withdraws_a_retry_not_started(dispatched: bool) -> None:
    s = Scheduler()
    await lost_and_retried(s, dispatch_retry=dispatched)
    wakes = s.wakes.count
    await s.send(true_outcome(), RUNNER_SOURCE)
    doc = s.jobs.docs[JOB]
    assert (doc["phase"], doc["attempt"], doc["state"], doc["result_attempt"]) == (FINISHED, 2, "SUCCESS", 1)
    closing = s.jobs.events[-1].data
    assert (closing["attempt"], closing["state"], closing["result_attempt"]) == (2, "SUCCESS", 1)
    assert [o["name"] for o in closing["outputs"]] == ["catalog.fits"]
    assert closing["reason"] == "attempt 1 finished after all (SUCCESS); its retry, attempt 2, was withdrawn"
    assert closing["cpu_s"] is None  # attempt 1's CPU stays on attempt 1's own report
    assert s.wakes.count == wakes + (1 if dispatched else 0)  # a dispatched retry's slot is free
    assert await s.dispatch() == 0
    emitted = len(s.jobs.events)
    await s.send(true_outcome(), RUNNER_SOURCE)  # a duplicate closes nothing twice
    assert len(s.jobs.events) == emitted


async def test_a_retry_that_started_is_not_withdrawn() -> None:
    s = Scheduler()
    await lost_and_retried(s, dispatch_retry=True)
    await s.send(reported(JobState.STARTED, attempt=2), RUNNER_SOURCE)
    await s.send(true_outcome(), RUNNER_SOURCE)
    doc = s.jobs.docs[JOB]
    assert (doc["phase"], doc["attempt"], doc["state"]) == (DISPATCHED, 2, "STARTED")


@pytest.mark.parametrize(
    ("outcome", "source"),
    [
        (reported(JobState.FAILURE, retryable=True), RUNNER_SOURCE),  # superseded: not a true outcome
        (reported(JobState.TIMED_OUT), "monitor"),  # a verdict, not the runner's report
    ],
    ids=["retryable", "not-from-a-runner"],
)
async def test_only_a_runners_final_report_withdraws_a_retry(outcome: JobStateChanged, source: str) -> None:
    s = Scheduler()
    await lost_and_retried(s, dispatch_retry=False)
    await s.send(outcome, source)
    doc = s.jobs.docs[JOB]
    assert (doc["phase"], doc["attempt"], doc["state"]) == (WAITING, 2, "QUEUED")


def _comparable(docs: dict[str, Any]) -> dict[str, Any]:
    drop = {"updated_at", "queued_at", "submitted_at", "dispatched_at", "sent_at", "outbox", "outbox_pending"}
    return {j: {k: v for k, v in d.items() if k not in drop} for j, d in docs.items()}


REPORTS = st.sampled_from(
    [
        (JobState.STARTED, False, RUNNER_SOURCE),
        (JobState.RUNNING, False, RUNNER_SOURCE),
        (JobState.SUCCESS, False, RUNNER_SOURCE),
        (JobState.FAILURE, False, RUNNER_SOURCE),
        (JobState.FAILURE, True, "monitor"),
        (JobState.TIMED_OUT, False, "monitor"),
    ]
)


@settings(max_examples=100, deadline=None)
@given(
    reports=st.lists(st.tuples(st.integers(0, 2), REPORTS), max_size=14),
    cuts=st.sets(st.integers(1, 13)),
)
def test_a_batch_of_reports_tracks_what_one_by_one_tracks(
    reports: list[tuple[int, tuple[JobState, bool, str]]], cuts: set[int]
) -> None:
    """Three dispatched jobs, the same reports (any order, duplicates) one by one or in batches."""
    jobs = [f"{JOB[:-1]}{n}" for n in range(3)]

    async def run() -> tuple[Scheduler, Scheduler]:
        alone, together = Scheduler(), Scheduler()
        for s in (alone, together):
            for job in jobs:
                await s.send(submitted(job_id=job))
            await s.send(heartbeat(8))
            await s.dispatch()
        envelopes = [
            Envelope.wrap(reported(state, retryable=retryable).model_copy(update={"job_id": jobs[n]}), source)
            for n, (state, retryable, source) in reports
        ]
        for envelope in envelopes:
            await alone._route(envelope)
        bounds = [0, *sorted(c for c in cuts if c < len(envelopes)), len(envelopes)]
        for start, end in itertools.pairwise(bounds):
            await on_batch(envelopes[start:end], together.deps)
        return alone, together

    alone, together = asyncio.run(run())
    assert _comparable(together.jobs.docs) == _comparable(alone.jobs.docs)
    assert sorted(together.jobs.states()) == sorted(alone.jobs.states())

"""Dispatch without a window, and the start reconciliation, against the in-memory fakes.

The clock is the ``now`` each use case takes: no sleeps, every instant chosen by the test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from caesar_common.bus import runner_pool_queue
from caesar_common.jobstate import JobState
from caesar_scheduler.domain.capacity import CapacityTable, RunnerSeen
from caesar_scheduler.domain.phases import DISPATCHED, FINISHED, WAITING
from caesar_scheduler.domain.retry import RetryPolicy
from caesar_scheduler.domain.start import StartPolicy
from caesar_scheduler.service.dispatch import dispatch_once
from caesar_scheduler.service.progress import track_state
from caesar_scheduler.service.reconcile import reconcile_unstarted
from tests.unit.fakes.scheduler import FakeJobStore, Kicks
from tests.unit.test_scheduler_handlers import reported

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POOL = "local"
JOB = "11111111-1111-4111-8111-111111111111"
START = StartPolicy(timeout_s=120.0, max_resends=2)
RETRY = RetryPolicy(max_attempts=2, backoff_s=5.0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def job(job_id: str, owner: str, queued_at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "_id": job_id,
        "owner": owner,
        "app": "aegean",
        "params": {},
        "input": {"file_id": "a" * 32, "ext": "fits", "size_bytes": 0},
        "wall_time_s": 60,
        "pool": POOL,
        "phase": WAITING,
        "state": JobState.QUEUED.value,
        "attempt": 1,
        "queued_at": queued_at,
        **fields,
    }


def capacity(slots: int, at: datetime = T0) -> CapacityTable:
    table = CapacityTable(timedelta(hours=1))
    table.observe(RunnerSeen("r1", POOL, slots, True, at))
    return table


async def test_heavy_backlog_at_cap_does_not_hide_a_light_users_job() -> None:
    """6,000 waiting jobs of a user at cap, older than everything: the light user still runs."""
    jobs, kicks = FakeJobStore(), Kicks()
    for i in range(4):
        jobs.docs[f"run-{i}"] = job(f"run-{i}", "heavy", T0, phase=DISPATCHED)
    for i in range(6000):
        jobs.docs[f"heavy-{i:04d}"] = job(f"heavy-{i:04d}", "heavy", T0 + timedelta(milliseconds=i))
    jobs.docs["light-0"] = job("light-0", "light", T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=2)
    sent = await dispatch_once(jobs, capacity(8, now), kicks, [POOL], max_active_per_user=4, now=now)
    assert sent == 1
    assert [c.data["job_id"] for c, _ in jobs.commands] == ["light-0"]
    assert jobs.reads == [(POOL, "light", 1)]  # the heavy backlog was never read
    assert sample("caesar_scheduler_waiting_jobs", pool=POOL) == 6001


async def test_a_round_reads_at_most_fetch_per_owner_jobs_of_one_owner() -> None:
    jobs, kicks = FakeJobStore(), Kicks()
    for i in range(50):
        jobs.docs[f"a-{i:02d}"] = job(f"a-{i:02d}", "alice", T0 + timedelta(seconds=i))
    now = T0 + timedelta(minutes=30)
    assert await dispatch_once(jobs, capacity(20), kicks, [POOL], fetch_per_owner=3, now=now) == 3
    assert jobs.reads == [(POOL, "alice", 3)]
    assert [c.data["job_id"] for c, _ in jobs.commands] == ["a-00", "a-01", "a-02"]
    assert await dispatch_once(jobs, capacity(20), kicks, [POOL], fetch_per_owner=3, now=now) == 3


async def dispatched_job(jobs: FakeJobStore, at: datetime) -> None:
    """One job, dispatched at ``at`` (which the job records as its ``sent_at``)."""
    jobs.docs[JOB] = job(JOB, "alice", T0)
    assert await dispatch_once(jobs, capacity(1, at), Kicks(), [POOL], now=at) == 1
    assert jobs.docs[JOB]["sent_at"] == at


def resends() -> float:
    return sample("caesar_scheduler_start_resends_total", pool=POOL)


async def test_an_attempt_not_started_in_time_gets_the_same_run_job_again() -> None:
    jobs, kicks = FakeJobStore(), Kicks()
    t1 = T0 + timedelta(minutes=1)
    await dispatched_job(jobs, t1)
    table = capacity(1, t1)
    before = resends()
    assert await reconcile_unstarted(jobs, kicks, table, START, RETRY, now=t1 + timedelta(seconds=119)) == 0
    assert len(jobs.commands) == 1
    t2 = t1 + timedelta(seconds=120)
    assert await reconcile_unstarted(jobs, kicks, table, START, RETRY, now=t2) == 1
    (first, queue1), (again, queue2) = jobs.commands
    assert queue1 == queue2 == runner_pool_queue(POOL)
    assert again.data == first.data  # the same command: same job, attempt, pool, inputs
    assert again.id != first.id
    assert kicks.ids == [JOB]
    assert resends() == before + 1
    doc = jobs.docs[JOB]
    assert (doc["phase"], doc["attempt"], doc["sent_at"], doc["start_resends"]) == (DISPATCHED, 1, t2, 1)
    assert doc["dispatched_at"] == t1  # the first dispatch stays recorded
    # The clock restarts at each re-send.
    assert await reconcile_unstarted(jobs, kicks, table, START, RETRY, now=t2 + timedelta(seconds=119)) == 0
    assert jobs.events == []  # no state change was announced


async def test_a_started_attempt_is_left_alone() -> None:
    jobs, kicks = FakeJobStore(), Kicks()
    await dispatched_job(jobs, T0)
    assert await track_state(reported(JobState.STARTED), jobs, kicks, RETRY) is False
    later = T0 + timedelta(hours=1)
    assert await reconcile_unstarted(jobs, kicks, capacity(1, later), START, RETRY, now=later) == 0
    assert len(jobs.commands) == 1


async def test_a_pool_without_a_live_runner_is_not_reconciled() -> None:
    """Commands wait in the queue for a runner; failing them would burn attempts in an outage."""
    jobs, kicks = FakeJobStore(), Kicks()
    await dispatched_job(jobs, T0)
    later = T0 + timedelta(hours=2)  # the runner's heartbeat is older than its 1 h timeout
    assert await reconcile_unstarted(jobs, kicks, capacity(1, T0), START, RETRY, now=later) == 0
    assert len(jobs.commands) == 1


async def test_never_started_after_every_resend_is_retried_then_aborted() -> None:
    jobs, kicks = FakeJobStore(), Kicks()
    await dispatched_job(jobs, T0)
    now = T0
    for _ in range(START.max_resends):
        now += timedelta(seconds=120)
        assert await reconcile_unstarted(jobs, kicks, capacity(1, now), START, RETRY, now=now) == 1
    assert len(jobs.commands) == 1 + START.max_resends
    never = sample("caesar_scheduler_never_started_total", pool=POOL)
    now += timedelta(seconds=120)
    assert await reconcile_unstarted(jobs, kicks, capacity(1, now), START, RETRY, now=now) == 1
    assert sample("caesar_scheduler_never_started_total", pool=POOL) == never + 1
    failure, queued = jobs.events
    assert (failure.data["state"], failure.data["attempt"], failure.data["retryable"]) == ("FAILURE", 1, True)
    assert "never started" in failure.data["reason"]
    assert "sent 3 times" in failure.data["reason"]
    assert (queued.data["state"], queued.data["attempt"]) == ("QUEUED", 2)
    doc = jobs.docs[JOB]
    assert (doc["phase"], doc["attempt"]) == (WAITING, 2)
    assert doc["queued_at"] == now + RETRY.delay(1)  # the retry policy's backoff

    # Attempt 2 is dispatched afresh (its own clock, its own re-sends), then given up on.
    now = doc["queued_at"]
    assert await dispatch_once(jobs, capacity(1, now), kicks, [POOL], now=now) == 1
    assert jobs.commands[-1][0].data["attempt"] == 2
    assert jobs.docs[JOB]["start_resends"] == 0
    for _ in range(START.max_resends + 1):
        now += timedelta(seconds=120)
        assert await reconcile_unstarted(jobs, kicks, capacity(1, now), START, RETRY, now=now) == 1
    assert [(e.data["state"], e.data["attempt"]) for e in jobs.events[2:]] == [("FAILURE", 2), ("ABORTED", 2)]
    assert "gave up after 2 attempts: never started" in jobs.events[-1].data["reason"]
    assert jobs.docs[JOB]["phase"] == FINISHED


async def test_a_report_racing_the_resend_wins() -> None:
    """The re-send is guarded: once STARTED is recorded, a pass working from an older read
    changes nothing."""
    jobs, kicks = FakeJobStore(), Kicks()
    await dispatched_job(jobs, T0)
    stale = await jobs.unstarted(T0)
    assert await track_state(reported(JobState.STARTED), jobs, kicks, RETRY) is False

    async def unstarted_as_read_before(sent_before: datetime) -> list[dict[str, Any]]:
        return stale

    jobs.unstarted = unstarted_as_read_before  # type: ignore[method-assign]
    later = T0 + timedelta(hours=1)
    assert await reconcile_unstarted(jobs, kicks, capacity(1, later), START, RETRY, now=later) == 0
    assert len(jobs.commands) == 1
    assert jobs.docs[JOB]["state"] == "STARTED"


def test_start_policy() -> None:
    policy = StartPolicy(timeout_s=60.0, max_resends=1)
    assert policy.sent_before(T0) == T0 - timedelta(seconds=60)
    assert policy.check_interval_s() == 15.0
    assert StartPolicy(timeout_s=0.01).check_interval_s() == 0.05
    assert policy.decide(0).__class__.__name__ == "Resend"
    never = policy.decide(1)
    assert "never started" in getattr(never, "reason", "")
    assert "sent twice" not in getattr(never, "reason", "")

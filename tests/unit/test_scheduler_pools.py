"""Pools without a live runner: their status, and jobs ABORTED after waiting too long for one.

Every instant is chosen by the test (the use cases take ``now``); no sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caesar_common.events import Envelope, PoolStatus, decode
from caesar_common.jobstate import JobState
from caesar_scheduler.domain.capacity import CapacityTable, RunnerSeen
from caesar_scheduler.domain.phases import DISPATCHED, FINISHED, WAITING
from caesar_scheduler.domain.pool_status import PoolView, pool_views, waiting_reason
from caesar_scheduler.service.pools import watch_pools
from tests.unit.fakes.scheduler import FakeJobStore, Kicks
from tests.unit.test_scheduler_start import job

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT = timedelta(seconds=20)
MAX_WAIT = timedelta(hours=1)
A, B, C = (f"{n}1111111-1111-4111-8111-111111111111" for n in "abc")


def table(*seen: tuple[str, str, datetime]) -> CapacityTable:
    capacity = CapacityTable(TIMEOUT)
    for runner_id, pool, at in seen:
        capacity.observe(RunnerSeen(runner_id, pool, 2, True, at))
    return capacity


def test_a_pool_is_runnerless_from_its_last_heartbeat_plus_the_timeout() -> None:
    capacity = table(("r1", "local", T0))
    [alive] = pool_views(capacity, ["local"], T0 + timedelta(seconds=10), started_at=T0)
    assert (alive.live_runners, alive.slots_total, alive.runnerless_since) == (1, 2, None)
    [gone] = pool_views(capacity, ["local"], T0 + timedelta(minutes=5), started_at=T0)
    assert (gone.live_runners, gone.runnerless_since) == (0, T0 + TIMEOUT)


def test_a_restarted_scheduler_counts_from_its_own_start() -> None:
    """It knows no runner yet: that is ignorance, not an hour without runners."""
    started = T0 + timedelta(hours=5)
    [view] = pool_views(table(("r1", "local", T0)), ["local"], started, started_at=started)
    assert view.runnerless_since == started
    [never] = pool_views(table(), ["slurm"], started, started_at=started)
    assert never.runnerless_since == started
    assert view.abort_before(started + MAX_WAIT - timedelta(seconds=1), MAX_WAIT) is None
    assert view.abort_before(started + MAX_WAIT, MAX_WAIT) == started


def test_abort_only_after_the_whole_maximum_and_never_with_zero() -> None:
    served = PoolView("local", 1, 2, None)
    assert served.abort_before(T0 + timedelta(days=9), MAX_WAIT) is None
    starved = PoolView("local", 0, 0, T0)
    assert starved.abort_before(T0 + timedelta(minutes=59), MAX_WAIT) is None
    assert starved.abort_before(T0 + timedelta(minutes=90), MAX_WAIT) == T0 + timedelta(minutes=30)
    assert starved.abort_before(T0 + timedelta(days=9), timedelta(0)) is None
    assert waiting_reason(served, MAX_WAIT) == ""
    text = waiting_reason(starved, MAX_WAIT)
    assert "no live runner in pool 'local' since 2026-01-01 00:00:00 UTC" in text
    assert "3600 s" in text


class Published:
    def __init__(self) -> None:
        self.statuses: list[PoolStatus] = []

    async def __call__(self, envelope: Envelope) -> None:
        message = decode(envelope)
        assert isinstance(message, PoolStatus)
        self.statuses.append(message)


async def test_jobs_of_a_runnerless_pool_are_announced_then_aborted() -> None:
    jobs, kicks, published = FakeJobStore(), Kicks(), Published()
    jobs.docs[A] = job(A, "alice", T0)  # waits since the start
    jobs.docs[B] = job(B, "bob", T0 + timedelta(minutes=50))  # has not waited an hour yet
    jobs.docs[C] = job(C, "carol", T0, phase=DISPATCHED)  # a runner has it: not ours to end
    capacity = table()

    async def watch(at: datetime) -> int:
        return await watch_pools(
            jobs,
            kicks,
            capacity,
            ["local"],
            published,
            started_at=T0,
            max_wait=MAX_WAIT,
            now=at,
        )

    assert await watch(T0 + timedelta(minutes=1)) == 0
    [status] = published.statuses
    assert (status.pool, status.live_runners, status.runnerless_since) == ("local", 0, T0)
    assert "no live runner" in status.reason
    assert await watch(T0 + timedelta(minutes=1, seconds=10)) == 0
    assert len(published.statuses) == 2  # every pass: a lost snapshot is soon replaced

    assert await watch(T0 + timedelta(minutes=61)) == 1
    assert (jobs.docs[A]["phase"], jobs.docs[A]["state"]) == (FINISHED, JobState.ABORTED.value)
    assert "waited more than 3600 s" in jobs.docs[A]["reason"]
    assert jobs.docs[B]["phase"] == WAITING
    assert jobs.docs[C]["phase"] == DISPATCHED
    assert kicks.ids == [A]
    assert [(e.data["job_id"], e.data["state"]) for e in jobs.events] == [(A, "ABORTED")]

    # A runner comes back before B's hour is up: B is left to run.
    capacity.observe(RunnerSeen("r2", "local", 4, True, T0 + timedelta(minutes=100)))
    assert await watch(T0 + timedelta(minutes=100)) == 0
    assert jobs.docs[B]["phase"] == WAITING
    assert published.statuses[-1].runnerless_since is None
    assert published.statuses[-1].reason == ""

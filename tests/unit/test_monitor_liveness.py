"""Watchdog verdicts: which executing jobs the monitor ends, and with what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caesar_common.jobstate import JobState
from caesar_monitor.domain.liveness import (
    RUNNER_LOST,
    WALL_TIME_EXCEEDED,
    ActiveJob,
    Verdict,
    judge,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)
TIMEOUT = 30.0
GRACE = 60.0


def job(
    state: JobState = JobState.RUNNING,
    *,
    started_s_ago: float = 600.0,
    runner_id: str = "r1",
    wall_time_s: float | None = 3600.0,
    attempt: int = 2,
) -> ActiveJob:
    return ActiveJob(
        job_id="j1",
        owner="alice",
        app="caesar",
        state=state,
        attempt=attempt,
        started_at=NOW - timedelta(seconds=started_s_ago),
        runner_id=runner_id,
        pool="local",
        wall_time_s=wall_time_s,
    )


def verdicts(
    jobs: list[ActiveJob],
    last_seen: dict[str, datetime],
    watching_since: datetime = LONG_AGO,
) -> list[Verdict]:
    return judge(
        jobs,
        last_seen,
        now=NOW,
        runner_timeout_s=TIMEOUT,
        wall_time_grace_s=GRACE,
        watching_since=watching_since,
    )


@pytest.mark.parametrize("state", [JobState.STARTED, JobState.RUNNING])
def test_runner_alive_keeps_job(state: JobState) -> None:
    assert verdicts([job(state)], {"r1": NOW - timedelta(seconds=5)}) == []


@pytest.mark.parametrize("state", [JobState.STARTED, JobState.RUNNING])
def test_silent_runner_fails_job_as_retryable_in_the_same_attempt(state: JobState) -> None:
    j = job(state)
    [v] = verdicts([j], {"r1": NOW - timedelta(seconds=TIMEOUT + 1)})
    assert v == Verdict(j, JobState.FAILURE, RUNNER_LOST, retryable=True)
    assert v.job.attempt == 2


def test_heartbeat_exactly_at_timeout_is_not_yet_lost() -> None:
    assert verdicts([job()], {"r1": NOW - timedelta(seconds=TIMEOUT)}) == []


def test_runner_never_seen_is_measured_from_job_start() -> None:
    assert verdicts([job(started_s_ago=TIMEOUT - 1)], {}) == []
    [v] = verdicts([job(started_s_ago=TIMEOUT + 1)], {})
    assert v.reason == RUNNER_LOST


def test_heartbeat_older_than_the_job_start_does_not_count_before_it() -> None:
    # The runner's last heartbeat predates the job: a full timeout from the start is given.
    last_seen = {"r1": NOW - timedelta(seconds=500)}
    assert verdicts([job(started_s_ago=TIMEOUT - 1)], last_seen) == []
    assert len(verdicts([job(started_s_ago=TIMEOUT + 1)], last_seen)) == 1


def test_job_without_runner_id_is_judged_by_start_time() -> None:
    [v] = verdicts([job(runner_id="", started_s_ago=TIMEOUT + 1)], {"": NOW})
    assert v.reason == RUNNER_LOST


def test_monitor_just_started_gives_runners_a_full_timeout() -> None:
    # After a monitor outage the heartbeats queued meanwhile are read before judging.
    stale = {"r1": NOW - timedelta(minutes=10)}
    assert verdicts([job()], stale, watching_since=NOW - timedelta(seconds=5)) == []
    assert len(verdicts([job()], stale, watching_since=NOW - timedelta(seconds=TIMEOUT + 1))) == 1


@pytest.mark.parametrize(
    "state",
    [
        JobState.PENDING,
        JobState.HELD,
        JobState.QUEUED,
        JobState.SUCCESS,
        JobState.FAILURE,
        JobState.TIMED_OUT,
        JobState.CANCELED,
        JobState.ABORTED,
    ],
)
def test_jobs_not_executing_are_ignored(state: JobState) -> None:
    assert verdicts([job(state, started_s_ago=10_000, wall_time_s=1)], {}) == []


def test_wall_time_exceeded_beyond_grace_times_out() -> None:
    j = job(started_s_ago=100 + GRACE + 1, wall_time_s=100)
    [v] = verdicts([j], {"r1": NOW})
    assert v == Verdict(j, JobState.TIMED_OUT, WALL_TIME_EXCEEDED, retryable=False)


def test_wall_time_within_grace_is_left_to_the_runner() -> None:
    assert verdicts([job(started_s_ago=100 + GRACE - 1, wall_time_s=100)], {"r1": NOW}) == []


def test_wall_time_applies_to_running_jobs_only() -> None:
    started = job(JobState.STARTED, started_s_ago=100 + GRACE + 1, wall_time_s=100)
    assert verdicts([started], {"r1": NOW}) == []


def test_unknown_wall_time_never_times_out() -> None:
    assert verdicts([job(started_s_ago=10**6, wall_time_s=None)], {"r1": NOW}) == []


def test_lost_runner_wins_over_exceeded_wall_time() -> None:
    [v] = verdicts([job(started_s_ago=10_000, wall_time_s=100)], {})
    assert (v.state, v.reason, v.retryable) == (JobState.FAILURE, RUNNER_LOST, True)


def test_each_job_judged_on_its_own_runner() -> None:
    a = ActiveJob("a", "u", "x", JobState.RUNNING, 1, LONG_AGO, runner_id="alive")
    b = ActiveJob("b", "u", "x", JobState.RUNNING, 1, LONG_AGO, runner_id="dead")
    out = verdicts([a, b], {"alive": NOW, "dead": NOW - timedelta(seconds=TIMEOUT * 2)})
    assert [v.job.job_id for v in out] == ["b"]


def test_active_job_from_timeline_document() -> None:
    doc = {
        "_id": "j9",
        "owner": "bob",
        "app": "aegean",
        "state": "RUNNING",
        "attempt": 3,
        "started_at": NOW,
        "runner_id": "r7",
        "pool": "slurm",
        "wall_time_s": 120,
        "retryable": False,
    }
    assert ActiveJob.of(doc) == ActiveJob(
        "j9", "bob", "aegean", JobState.RUNNING, 3, NOW, "r7", "slurm", 120.0, False
    )


async def test_watchdog_gives_no_verdict_while_cut_off_from_the_broker() -> None:
    """Heartbeats cannot arrive while the monitor is disconnected: silence proves nothing."""
    from caesar_monitor.service.deps import MonitorDeps
    from caesar_monitor.service.watchdog import sweep
    from caesar_monitor.settings import MonitorSettings

    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the watchdog read {name} while disconnected")

    deps = MonitorDeps(
        timelines=Untouchable(),  # type: ignore[arg-type]
        runners=Untouchable(),  # type: ignore[arg-type]
        settings=MonitorSettings(),
        kick=lambda _: None,
        broker_connected=lambda: False,
    )
    assert await sweep(deps) == []

"""Watchdog verdicts: which executing jobs the monitor ends, and with what."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from caesar_common.jobstate import JobState
from caesar_monitor.domain.liveness import (
    ATTEMPT_NOT_REPORTED,
    RUNNER_LOST,
    WALL_TIME_EXCEEDED,
    ActiveJob,
    AttemptKey,
    RunnerReport,
    Verdict,
    fold_heartbeat,
    judge,
    unreported_since,
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
    """Judge with runners last heard at ``last_seen``, each listing every job: the
    silence rule alone (the unreported-attempt rule has its own tests below)."""
    listed = frozenset(j.key for j in jobs)
    reports = {r: RunnerReport(last_seen=t, sent_at=t, running=listed) for r, t in last_seen.items()}
    return judge(
        jobs,
        reports,
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
        kick=lambda *_: None,
        broker_connected=lambda: False,
    )
    assert await sweep(deps) == []


# -- the unreported-attempt rule: a live runner whose heartbeats leave the attempt out ----

# The runner's clock runs an hour behind the monitor's: the rule must not care.
SKEW = timedelta(hours=-1)
START = NOW + SKEW - timedelta(seconds=600)  # job()'s default start, on the runner's clock
KEY: AttemptKey = ("j1", 2)


def runner_job(state: JobState = JobState.RUNNING) -> ActiveJob:
    """No wall time: that rule compares the start with the monitor's clock (skewed here)."""
    return ActiveJob("j1", "alice", "caesar", state, 2, START, "r1", "local", None)


def report(
    sent_s_after_start: float,
    *,
    running: frozenset[AttemptKey] = frozenset(),
    dropped_s_after_start: float | None = None,
) -> RunnerReport:
    """A live runner (heard just now) whose latest heartbeat was sent at start + s."""
    missing = {} if dropped_s_after_start is None else {KEY: START + timedelta(seconds=dropped_s_after_start)}
    return RunnerReport(
        last_seen=NOW - timedelta(seconds=1),
        sent_at=START + timedelta(seconds=sent_s_after_start),
        running=running,
        missing=missing,
    )


def judged(j: ActiveJob, r: RunnerReport, watching_since: datetime = LONG_AGO) -> list[Verdict]:
    return judge(
        [j],
        {"r1": r},
        now=NOW,
        runner_timeout_s=TIMEOUT,
        wall_time_grace_s=GRACE,
        watching_since=watching_since,
    )


@pytest.mark.parametrize("state", [JobState.STARTED, JobState.RUNNING])
def test_attempt_listed_by_its_runner_stays(state: JobState) -> None:
    assert judged(runner_job(state), report(10_000, running=frozenset({KEY}))) == []


@pytest.mark.parametrize("state", [JobState.STARTED, JobState.RUNNING])
def test_attempt_never_listed_within_the_grace_stays(state: JobState) -> None:
    # The claim is written before the attempt joins the runner's list: a heartbeat in
    # between leaves it out, and the next one lists it.
    assert judged(runner_job(state), report(TIMEOUT)) == []


@pytest.mark.parametrize("state", [JobState.STARTED, JobState.RUNNING])
def test_attempt_never_listed_beyond_the_grace_is_lost(state: JobState) -> None:
    j = runner_job(state)
    [v] = judged(j, report(TIMEOUT + 1))
    assert v == Verdict(j, JobState.FAILURE, ATTEMPT_NOT_REPORTED, retryable=True)


def test_dropped_attempt_counts_from_the_first_heartbeat_without_it() -> None:
    # A long job that has just ended is not lost while its final event is on its way.
    assert judged(runner_job(), report(10_000, dropped_s_after_start=10_000 - TIMEOUT)) == []
    [v] = judged(runner_job(), report(10_000, dropped_s_after_start=10_000 - TIMEOUT - 1))
    assert v.reason == ATTEMPT_NOT_REPORTED


def test_heartbeat_older_than_the_attempt_start_says_nothing() -> None:
    # The runner is alive, but its latest heartbeat was sent before the attempt started.
    assert judged(runner_job(), report(-1)) == []
    assert judged(runner_job(), report(0)) == []
    assert unreported_since(runner_job(), report(0)) is None


def test_drop_recorded_before_the_start_counts_from_the_start() -> None:
    assert unreported_since(runner_job(), report(50, dropped_s_after_start=-100)) == START


def test_silent_runner_is_lost_whatever_it_last_listed() -> None:
    silent = RunnerReport(
        last_seen=NOW - timedelta(seconds=TIMEOUT + 1),
        sent_at=START + timedelta(seconds=5),
        running=frozenset({KEY}),
    )
    [v] = judged(runner_job(), silent)
    assert v.reason == RUNNER_LOST


def test_unreported_rule_waits_a_timeout_after_the_monitor_starts_watching() -> None:
    # Job events queued while the monitor was away (the attempt's final state) come first.
    assert judged(runner_job(), report(10_000), watching_since=NOW - timedelta(seconds=TIMEOUT)) == []
    assert len(judged(runner_job(), report(10_000), watching_since=NOW - timedelta(seconds=TIMEOUT + 1))) == 1


def test_unreported_attempt_wins_over_exceeded_wall_time() -> None:
    j = ActiveJob("j1", "alice", "caesar", JobState.RUNNING, 2, START, "r1", "local", 1.0)
    # The monitor's clock: the attempt started at START - SKEW, long past its wall time.
    [v] = judged(j, report(TIMEOUT + 1))
    assert (v.state, v.reason, v.retryable) == (JobState.FAILURE, ATTEMPT_NOT_REPORTED, True)


def test_other_attempts_of_the_job_do_not_vouch_for_this_one() -> None:
    assert len(judged(runner_job(), report(TIMEOUT + 1, running=frozenset({("j1", 1)})))) == 1


def test_fold_remembers_when_an_attempt_left_the_list() -> None:
    a, b = ("ja", 1), ("jb", 1)
    t = [START + timedelta(seconds=5 * n) for n in range(8)]
    r = fold_heartbeat(None, sent_at=t[0], received_at=NOW, running=[a, b], forget_after_s=60)
    assert (r.running, dict(r.missing)) == (frozenset({a, b}), {})
    r = fold_heartbeat(r, sent_at=t[1], received_at=NOW, running=[a], forget_after_s=60)
    assert dict(r.missing) == {b: t[1]}
    r = fold_heartbeat(r, sent_at=t[2], received_at=NOW, running=[], forget_after_s=60)
    assert dict(r.missing) == {b: t[1], a: t[2]}  # b keeps its first absence
    r = fold_heartbeat(r, sent_at=t[3], received_at=NOW, running=[b], forget_after_s=60)
    assert (r.running, dict(r.missing)) == (frozenset({b}), {a: t[2]})  # listed again (resumed)
    r = fold_heartbeat(r, sent_at=t[7], received_at=NOW, running=[b], forget_after_s=20)
    assert dict(r.missing) == {}  # forgotten: older than the horizon
    assert (r.sent_at, r.last_seen) == (t[7], NOW)


def test_forgetting_a_drop_changes_no_verdict() -> None:
    """A forgotten drop falls back to the attempt's start, which is earlier: still lost."""
    kept = report(1000, dropped_s_after_start=1000 - 2 * TIMEOUT)
    forgotten = fold_heartbeat(
        kept,
        sent_at=kept.sent_at + timedelta(seconds=1),
        received_at=kept.last_seen,
        running=[],
        forget_after_s=TIMEOUT,
    )
    assert KEY not in forgotten.missing
    assert [v.reason for v in judged(runner_job(), kept)] == [ATTEMPT_NOT_REPORTED]
    assert [v.reason for v in judged(runner_job(), forgotten)] == [ATTEMPT_NOT_REPORTED]


def test_a_slurm_attempt_outlives_a_runner_restart_of_ten_minutes() -> None:
    """Slurm jobs run on without their runner: its silence is judged on the pool's timeout."""
    slurm = replace(job(), job_id="j-slurm", pool="slurm", wall_time_s=None)
    local = replace(job(), job_id="j-local", wall_time_s=None)
    reports = {"r1": RunnerReport(last_seen=NOW - timedelta(minutes=10), sent_at=NOW, running=frozenset())}

    def judged_at(now: datetime) -> list[str]:
        found = judge(
            [slurm, local],
            reports,
            now=now,
            runner_timeout_s=TIMEOUT,
            wall_time_grace_s=GRACE,
            watching_since=LONG_AGO,
            timeout_by_pool={"slurm": 900.0},
        )
        return [v.job.job_id for v in found]

    assert judged_at(NOW) == ["j-local"]
    assert judged_at(NOW + timedelta(minutes=5, seconds=1)) == ["j-slurm", "j-local"]

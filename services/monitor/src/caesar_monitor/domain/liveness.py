"""Liveness verdicts: which executing jobs the monitor must end, and how.

A runner heartbeats every few seconds, listing the attempts it is executing. A job in
STARTED or RUNNING (both alike: the runner has claimed the attempt) can be stranded in
two ways, and would then stay executing forever, as it did in the old service:

* **its runner is silent** (the process or host died): no heartbeat for longer than the
  timeout. Silence is measured on the monitor's clock from the latest of: the runner's
  last heartbeat as received, the start of the attempt (a runner that never heartbeated
  since it took the job gets a full timeout from then), and the moment this monitor
  started watching (after a monitor outage the heartbeats queued meanwhile must be read
  before anyone is judged);
* **its runner is alive but no longer has the attempt** (the attempt's task died, its
  claim was written but never followed, its final write was lost): the runner's
  heartbeats have left the attempt out for longer than the timeout. This is measured
  on the *runner's* clock only: heartbeats count only if their ``sent_at`` is later than
  the attempt's start as the runner reported it (the STARTED/RUNNING event's
  ``changed_at``), so clock skew between hosts cannot fail a healthy attempt.

Either way the monitor fails the attempt as *retryable*, so the scheduler runs it again
as a new attempt. Independently, a job still RUNNING well past its wall-time limit (the
runner enforces the limit itself, so this means the runner's own enforcement failed) is
ended as TIMED-OUT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from caesar_common.jobstate import ACTIVE_STATES, JobState

RUNNER_LOST = "runner lost"
ATTEMPT_NOT_REPORTED = "attempt not reported by its runner"
WALL_TIME_EXCEEDED = "wall time exceeded (monitor)"

AttemptKey = tuple[str, int]
"""``(job_id, attempt)``: what a heartbeat lists for each attempt it executes."""


@dataclass(frozen=True)
class ActiveJob:
    """The facts about one job the watchdog needs (read from its timeline).

    ``started_at`` is the ``changed_at`` of the attempt's first STARTED/RUNNING event,
    written by the runner: it is on the runner's clock, like its heartbeats' ``sent_at``.
    """

    job_id: str
    owner: str
    app: str
    state: JobState
    attempt: int
    started_at: datetime | None
    runner_id: str = ""
    pool: str = ""
    wall_time_s: float | None = None
    retryable: bool = False

    @property
    def key(self) -> AttemptKey:
        return (self.job_id, self.attempt)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ActiveJob:
        wall = doc.get("wall_time_s")
        return cls(
            job_id=str(doc["_id"]),
            owner=doc.get("owner") or "",
            app=doc.get("app") or "",
            state=JobState(doc["state"]),
            attempt=int(doc["attempt"]),
            started_at=doc.get("started_at"),
            runner_id=doc.get("runner_id") or "",
            pool=doc.get("pool") or "",
            wall_time_s=float(wall) if wall is not None else None,
            retryable=bool(doc.get("retryable")),
        )


@dataclass(frozen=True)
class RunnerReport:
    """What the monitor knows of one runner from its heartbeats.

    ``last_seen`` is the monitor's clock when the latest heartbeat was consumed (for the
    silence rule: a runner whose clock is behind must not look dead). ``sent_at``,
    ``running`` and ``missing`` are the runner's own account: the latest heartbeat's send
    time, the attempts it listed, and for each attempt an earlier heartbeat listed but
    the later ones did not, the ``sent_at`` of the first heartbeat that left it out.
    """

    last_seen: datetime
    sent_at: datetime
    running: frozenset[AttemptKey] = frozenset()
    missing: Mapping[AttemptKey, datetime] = field(default_factory=dict)


def fold_heartbeat(
    previous: RunnerReport | None,
    *,
    sent_at: datetime,
    received_at: datetime,
    running: Iterable[AttemptKey],
    forget_after_s: float,
) -> RunnerReport:
    """The runner's report after one more (newer) heartbeat.

    An attempt that leaves the list is remembered as missing since this heartbeat, so
    "not reported for longer than the timeout" counts from when it disappeared, not
    from when it started: a long job that just ended is not lost while its final event
    is on its way. Missing entries older than ``forget_after_s`` are dropped to keep the
    document small; that changes no verdict as long as ``forget_after_s`` is at least
    the timeout, because a forgotten entry falls back to the attempt's start, which is
    earlier still (see :func:`unreported_since`).
    """
    listed = frozenset(running)
    if previous is None:
        return RunnerReport(received_at, sent_at, listed, {})
    horizon = sent_at - timedelta(seconds=forget_after_s)
    missing = {
        key: since for key, since in previous.missing.items() if key not in listed and since >= horizon
    }
    for key in previous.running - listed:
        missing.setdefault(key, sent_at)
    return RunnerReport(received_at, sent_at, listed, missing)


@dataclass(frozen=True)
class Verdict:
    """End ``job`` (at the state and attempt it was read in) with ``state``."""

    job: ActiveJob
    state: JobState
    reason: str
    retryable: bool


def _silence_start(job: ActiveJob, last_seen: datetime | None, watching_since: datetime) -> datetime:
    known = [t for t in (last_seen, job.started_at) if t is not None]
    return max([*known, watching_since])


def unreported_since(job: ActiveJob, report: RunnerReport) -> datetime | None:
    """Since when (runner's clock) the runner's heartbeats have left the attempt out.

    ``None`` when its latest heartbeat lists the attempt, or was sent no later than the
    attempt's start (it says nothing about the attempt), or the start is unknown. An
    attempt that was never listed counts from its start; one that was listed and then
    dropped, from the first heartbeat without it.
    """
    start = job.started_at
    if start is None or job.key in report.running or report.sent_at <= start:
        return None
    dropped = report.missing.get(job.key)
    return start if dropped is None else max(dropped, start)


def judge(
    jobs: Iterable[ActiveJob],
    runners: Mapping[str, RunnerReport],
    *,
    now: datetime,
    runner_timeout_s: float,
    wall_time_grace_s: float,
    watching_since: datetime,
    timeout_by_pool: Mapping[str, float] | None = None,
) -> list[Verdict]:
    """Verdicts for the jobs that must be ended now; jobs not executing are ignored.

    A lost runner or attempt wins over an exceeded wall time: the loss is what we know
    happened, and the scheduler (which bounds retries) decides whether to try again.
    The unreported-attempt rule waits until this monitor has watched for a full timeout:
    after a (re)connection the job events queued meanwhile (an attempt's final state,
    sent just before its runner dropped it from its heartbeats) must be read first.
    ``timeout_by_pool`` gives pools whose attempts outlive their runner (Slurm) a longer
    timeout than ``runner_timeout_s``.
    """
    verdicts = []
    for job in jobs:
        if job.state not in ACTIVE_STATES:
            continue
        timeout = timedelta(seconds=(timeout_by_pool or {}).get(job.pool, runner_timeout_s))
        settled = now - watching_since > timeout
        report = runners.get(job.runner_id) if job.runner_id else None
        seen = report.last_seen if report is not None else None
        if now - _silence_start(job, seen, watching_since) > timeout:
            verdicts.append(Verdict(job, JobState.FAILURE, RUNNER_LOST, retryable=True))
            continue
        since = unreported_since(job, report) if report is not None and settled else None
        if report is not None and since is not None and report.sent_at - since > timeout:
            verdicts.append(Verdict(job, JobState.FAILURE, ATTEMPT_NOT_REPORTED, retryable=True))
            continue
        if (
            job.state is JobState.RUNNING
            and job.started_at is not None
            and job.wall_time_s is not None
            and now - job.started_at > timedelta(seconds=job.wall_time_s + wall_time_grace_s)
        ):
            verdicts.append(Verdict(job, JobState.TIMED_OUT, WALL_TIME_EXCEEDED, retryable=False))
    return verdicts

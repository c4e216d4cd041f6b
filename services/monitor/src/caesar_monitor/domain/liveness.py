"""Liveness verdicts: which executing jobs the monitor must end, and how.

A runner heartbeats every few seconds; a job in STARTED/RUNNING whose runner has been
silent for longer than the timeout is stranded (the process or host died) and would stay
RUNNING forever, as it did in the old service. The monitor fails it as *retryable*, so
the scheduler runs it again as a new attempt. Independently, a job still RUNNING well past
its wall-time limit (the runner enforces the limit itself, so this means the runner's own
enforcement failed) is ended as TIMED-OUT.

Silence is measured from the latest of: the runner's last heartbeat, the start of the
job's attempt (a runner that never heartbeated since it took the job gets a full timeout
from then), and the moment this monitor started watching (after a monitor outage the
heartbeats queued meanwhile must be read before anyone is judged).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from caesar_common.jobstate import ACTIVE_STATES, JobState

RUNNER_LOST = "runner lost"
WALL_TIME_EXCEEDED = "wall time exceeded (monitor)"


@dataclass(frozen=True)
class ActiveJob:
    """The facts about one job the watchdog needs (read from its timeline)."""

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
class Verdict:
    """End ``job`` (at the state and attempt it was read in) with ``state``."""

    job: ActiveJob
    state: JobState
    reason: str
    retryable: bool


def _silence_start(job: ActiveJob, last_seen: datetime | None, watching_since: datetime) -> datetime:
    known = [t for t in (last_seen, job.started_at) if t is not None]
    return max([*known, watching_since])


def judge(
    jobs: Iterable[ActiveJob],
    last_seen: Mapping[str, datetime],
    *,
    now: datetime,
    runner_timeout_s: float,
    wall_time_grace_s: float,
    watching_since: datetime,
) -> list[Verdict]:
    """Verdicts for the jobs that must be ended now; jobs not executing are ignored.

    A lost runner wins over an exceeded wall time: the runner's death is what we know
    happened, and the scheduler (which bounds retries) decides whether to try again.
    """
    timeout = timedelta(seconds=runner_timeout_s)
    verdicts = []
    for job in jobs:
        if job.state not in ACTIVE_STATES:
            continue
        seen = last_seen.get(job.runner_id) if job.runner_id else None
        if now - _silence_start(job, seen, watching_since) > timeout:
            verdicts.append(Verdict(job, JobState.FAILURE, RUNNER_LOST, retryable=True))
            continue
        if (
            job.state is JobState.RUNNING
            and job.started_at is not None
            and job.wall_time_s is not None
            and now - job.started_at > timedelta(seconds=job.wall_time_s + wall_time_grace_s)
        ):
            verdicts.append(Verdict(job, JobState.TIMED_OUT, WALL_TIME_EXCEEDED, retryable=False))
    return verdicts

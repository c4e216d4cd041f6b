"""The watchdog sweep (a loop's use case): find stranded jobs, end them through the outbox.

The verdicts are pure (:mod:`caesar_monitor.domain.liveness`); this module reads what
they need and writes each ending as one guarded update that sets the new state, appends
the timeline entry and stores the ``JobStateChanged`` in the document's outbox, then asks
the relay to publish it. If the job moved meanwhile (its runner reported after all), the
guard fails and nothing is emitted. The same guard gives one verdict per attempt when
several monitor replicas sweep at once: both may judge the attempt lost, but only the
first write finds it still at the position both read.
"""

from __future__ import annotations

from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobPosition
from caesar_common.logging import get_logger
from caesar_common.outbox import envelope_for, outbox_update
from caesar_monitor import metrics
from caesar_monitor.domain.liveness import ActiveJob, Verdict, judge
from caesar_monitor.domain.timeline import Progress, Step, advance, state_entry
from caesar_monitor.service.deps import MonitorDeps

log = get_logger(__name__)

SOURCE = "monitor"


async def sweep(deps: MonitorDeps) -> list[Verdict]:
    """One watchdog pass; returns the verdicts that were applied (and emitted).

    Heartbeats reach us through the broker: while we are cut off from it, silence
    proves nothing about the runners, so no verdict is given (and after a reconnection
    ``watching_since`` restarts the clock, see ``bootstrap``).
    """
    if not deps.broker_connected():
        return []
    now = deps.clock()
    jobs = [ActiveJob.of(doc) for doc in await deps.timelines.executing()]
    if not jobs:
        return []
    runners = await deps.runners.reports(j.runner_id for j in jobs if j.runner_id)
    verdicts = judge(
        jobs,
        runners,
        now=now,
        runner_timeout_s=deps.settings.runner_timeout_s,
        timeout_by_pool=deps.settings.runner_timeout_by_pool,
        wall_time_grace_s=deps.settings.wall_time_grace_s,
        watching_since=deps.watching_since,
    )
    return [v for v in verdicts if await end_job(deps, v)]


async def end_job(deps: MonitorDeps, verdict: Verdict) -> bool:
    job = verdict.job
    message = JobStateChanged(
        job_id=job.job_id,
        owner=job.owner,
        app=job.app,
        attempt=job.attempt,
        state=verdict.state,
        reason=verdict.reason,
        retryable=verdict.retryable,
        changed_at=deps.clock(),
        pool=job.pool,
        runner_id=job.runner_id,
    )
    envelope = envelope_for(message, SOURCE)
    entry = state_entry(envelope.id, message)
    doc = await deps.timelines.load(job.job_id)
    held = Progress.of(doc)
    if held.position != JobPosition(job.attempt, job.state, job.retryable):
        return False  # moved since the sweep read it: the verdict is stale
    change = advance(held, Step.of(message), [*((doc or {}).get("events") or []), entry])
    if change is None:
        return False
    moved = await deps.timelines.move(
        job.job_id, held.position, change.fields, entry=entry, also=outbox_update([envelope])
    )
    if not moved:
        return False  # the runner reported after all: it is not lost
    metrics.observe_advance(job.app, change, entry)
    deps.kick(job.job_id, [envelope])
    log.warning(
        "job ended by the watchdog",
        job_id=job.job_id,
        attempt=job.attempt,
        state=verdict.state.value,
        reason=verdict.reason,
        runner_id=job.runner_id,
    )
    return True

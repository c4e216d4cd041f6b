"""One plain async function per message type, plus the transition they share.

Each handler is idempotent: it appends the event to the job's timeline (a no-op for a
duplicate) and then tries to move the job forward (a no-op for a stale or repeated
event). Both steps run again on redelivery, so a crash between them loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from caesar_common.events import (
    Envelope,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    RunnerHeartbeat,
    utcnow,
)
from caesar_common.message_router import HandlerTable
from caesar_monitor import metrics
from caesar_monitor.adapters.runners import RunnerRepository
from caesar_monitor.adapters.timelines import TimelineRepository
from caesar_monitor.domain.timeline import (
    Advance,
    Progress,
    Step,
    advance,
    cancel_entry,
    refresh,
    state_entry,
    submitted_entry,
)
from caesar_monitor.settings import MonitorSettings

# Concurrent writers to one timeline are rare (two events of one job in one prefetch
# window); a handful of re-reads settles any race, and failing loudly beats looping.
_MAX_RACES = 8


@dataclass
class MonitorDeps:
    """What the handlers and loops need; chosen once, in ``bootstrap``."""

    timelines: TimelineRepository
    runners: RunnerRepository
    settings: MonitorSettings
    kick: Callable[[str], None]
    """Ask the outbox relay to publish a timeline's pending events now."""
    clock: Callable[[], datetime] = utcnow
    watching_since: datetime = field(default_factory=utcnow)
    broker_connected: Callable[[], bool] = lambda: True
    """Whether heartbeats can reach us now (the watchdog pauses while they cannot)."""


async def apply_step(deps: MonitorDeps, job_id: str, step: Step, *, app: str = "") -> Advance | None:
    """Move the job to ``step`` if it supersedes what the timeline holds.

    Returns the applied transition, or ``None`` when the step did not move the job (the
    facts of the held attempt are still brought up to date from the entries).

    find_one + an update guarded on the position read (never find_one_and_update,
    which secantusdb runs as a scan); a lost race re-reads and decides again.
    """
    for _ in range(_MAX_RACES):
        doc = await deps.timelines.load(job_id)
        held = Progress.of(doc)
        entries = (doc or {}).get("events") or []
        change = advance(held, step, entries)
        if change is None:
            # Not a move, but a late entry may still complete the held attempt's facts.
            facts = refresh(held, entries)
            if facts is None or await deps.timelines.move(job_id, held.position, facts):
                return None
            continue
        if await deps.timelines.move(job_id, held.position, change.fields):
            metrics.observe_advance(app or (doc or {}).get("app") or "", change)
            return change
    raise RuntimeError(f"timeline of job {job_id} kept changing under the monitor")


async def on_job_submitted(message: JobSubmitted, envelope: Envelope, deps: MonitorDeps) -> None:
    facts = {
        "owner": message.owner,
        "app": message.app,
        "submitted_at": message.submitted_at,
        "wall_time_s": message.wall_time_s,
    }
    await deps.timelines.append(message.job_id, submitted_entry(envelope.id, message), facts)
    await apply_step(deps, message.job_id, Step.submission(message), app=message.app)


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: MonitorDeps) -> None:
    facts = {"owner": message.owner, "app": message.app}
    await deps.timelines.append(message.job_id, state_entry(envelope.id, message), facts)
    await apply_step(deps, message.job_id, Step.of(message), app=message.app)


async def on_job_cancel_requested(message: JobCancelRequested, envelope: Envelope, deps: MonitorDeps) -> None:
    await deps.timelines.append(message.job_id, cancel_entry(envelope.id, message), {"owner": message.owner})


async def on_runner_heartbeat(message: RunnerHeartbeat, envelope: Envelope, deps: MonitorDeps) -> None:
    now = deps.clock()
    await deps.runners.record(message, now)
    await refresh_runner_slots(deps, now)


async def refresh_runner_slots(deps: MonitorDeps, now: datetime) -> None:
    """Slot gauges summed per pool over the runners not yet timed out."""
    alive_since = now - timedelta(seconds=deps.settings.runner_timeout_s)
    metrics.set_runner_slots(await deps.runners.slots_by_pool(alive_since))


async def refresh_gauges(deps: MonitorDeps) -> None:
    """Recount jobs by state (one indexed count each) and the live runners' slots."""
    metrics.set_job_counts(await deps.timelines.count_by_state())
    await refresh_runner_slots(deps, deps.clock())


HANDLERS: HandlerTable[MonitorDeps] = {
    JobSubmitted: on_job_submitted,
    JobStateChanged: on_job_state_changed,
    JobCancelRequested: on_job_cancel_requested,
    RunnerHeartbeat: on_runner_heartbeat,
}

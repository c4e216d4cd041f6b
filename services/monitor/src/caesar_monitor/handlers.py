"""One plain async function per message type, and the table that routes them.

Each handler is idempotent: it appends the event to the job's timeline (a no-op for a
duplicate) and then tries to move the job forward (a no-op for a stale or repeated
event); the use cases in :mod:`caesar_monitor.service` do both.
"""

from __future__ import annotations

from caesar_common.events import (
    Envelope,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    RunnerHeartbeat,
)
from caesar_common.message_router import HandlerTable
from caesar_monitor.domain.timeline import Step, cancel_entry, state_entry, submitted_entry
from caesar_monitor.service.deps import MonitorDeps
from caesar_monitor.service.gauges import refresh_gauges
from caesar_monitor.service.heartbeats import observe_heartbeat
from caesar_monitor.service.timelines import record_event


async def on_job_submitted(message: JobSubmitted, envelope: Envelope, deps: MonitorDeps) -> None:
    facts = {
        "owner": message.owner,
        "app": message.app,
        "submitted_at": message.submitted_at,
        "wall_time_s": message.wall_time_s,
    }
    entry = submitted_entry(envelope.id, message)
    await record_event(
        deps.timelines, message.job_id, entry, facts, Step.submission(message), app=message.app
    )


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: MonitorDeps) -> None:
    facts = {"owner": message.owner, "app": message.app}
    entry = state_entry(envelope.id, message)
    await record_event(deps.timelines, message.job_id, entry, facts, Step.of(message), app=message.app)


async def on_job_cancel_requested(message: JobCancelRequested, envelope: Envelope, deps: MonitorDeps) -> None:
    """A cancel request is history only: the state changes when a runner or the scheduler acts."""
    await deps.timelines.append(message.job_id, cancel_entry(envelope.id, message), {"owner": message.owner})


async def on_runner_heartbeat(message: RunnerHeartbeat, envelope: Envelope, deps: MonitorDeps) -> None:
    await observe_heartbeat(deps.runners, message, deps.clock(), deps.settings.runner_timeout_s)


async def refresh_all_gauges(deps: MonitorDeps) -> None:
    """The periodic recount (and the first one, so /metrics is right from the first scrape)."""
    await refresh_gauges(deps.timelines, deps.runners, deps.clock(), deps.settings.runner_timeout_s)


HANDLERS: HandlerTable[MonitorDeps] = {
    JobSubmitted: on_job_submitted,
    JobStateChanged: on_job_state_changed,
    JobCancelRequested: on_job_cancel_requested,
    RunnerHeartbeat: on_runner_heartbeat,
}

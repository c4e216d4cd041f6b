"""One plain async function per message type, and the table that routes them.

Each handler is idempotent: it appends the event to the job's timeline (a no-op for a
duplicate) and then tries to move the job forward (a no-op for a stale or repeated
event); the use cases in :mod:`caesar_monitor.service` do both.
"""

from __future__ import annotations

from collections.abc import Sequence

from caesar_common.events import (
    Envelope,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    Message,
    RunnerHeartbeat,
)
from caesar_common.message_router import HandlerTable, decode_known, route_by_type
from caesar_monitor.domain.timeline import Step, cancel_entry, state_entry, submitted_entry
from caesar_monitor.service.deps import MonitorDeps
from caesar_monitor.service.gauges import refresh_gauges
from caesar_monitor.service.heartbeats import observe_heartbeat
from caesar_monitor.service.timelines import EventToRecord, record_event, record_events_together


def to_record(message: Message, envelope: Envelope) -> EventToRecord | None:
    """What a job event adds to its timeline (``None``: not a job event)."""
    if isinstance(message, JobSubmitted):
        facts = {
            "owner": message.owner,
            "app": message.app,
            "submitted_at": message.submitted_at,
            "wall_time_s": message.wall_time_s,
        }
        entry = submitted_entry(envelope.id, message)
        return EventToRecord(message.job_id, entry, facts, Step.submission(message), message.app)
    if isinstance(message, JobStateChanged):
        facts = {"owner": message.owner, "app": message.app}
        entry = state_entry(envelope.id, message)
        return EventToRecord(message.job_id, entry, facts, Step.of(message), message.app)
    if isinstance(message, JobCancelRequested):
        # History only: the state changes when a runner or the scheduler acts.
        return EventToRecord(
            message.job_id, cancel_entry(envelope.id, message), {"owner": message.owner}, None
        )
    return None


async def on_job_event(message: Message, envelope: Envelope, deps: MonitorDeps) -> None:
    event = to_record(message, envelope)
    assert event is not None
    await record_event(deps.timelines, event.job_id, event.entry, event.facts, event.step, app=event.app)


async def on_batch(envelopes: Sequence[Envelope], deps: MonitorDeps) -> None:
    """A batch of job events: one read and one write for all their timelines."""
    events: list[EventToRecord] = []
    route = route_by_type(HANDLERS, deps)
    for envelope in envelopes:
        message = decode_known(envelope)
        event = to_record(message, envelope) if message is not None else None
        if event is None:
            await route(envelope)  # a heartbeat on an old binding, an unknown type
        else:
            events.append(event)
    await record_events_together(deps.timelines, events)


async def on_runner_heartbeat(message: RunnerHeartbeat, envelope: Envelope, deps: MonitorDeps) -> None:
    await observe_heartbeat(deps.runners, message, deps.clock(), deps.settings.runner_timeout_s)


async def refresh_all_gauges(deps: MonitorDeps) -> None:
    """The periodic recount (and the first one, so /metrics is right from the first scrape)."""
    await refresh_gauges(deps.timelines, deps.runners, deps.clock(), deps.settings.runner_timeout_s)


HANDLERS: HandlerTable[MonitorDeps] = {
    JobSubmitted: on_job_event,
    JobStateChanged: on_job_event,
    JobCancelRequested: on_job_event,
    RunnerHeartbeat: on_runner_heartbeat,
}

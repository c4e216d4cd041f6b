"""The ``scheduler.events`` queue and the dispatcher from envelopes to handlers."""

from __future__ import annotations

from caesar_common.bus import Handler, QueueSpec
from caesar_common.message_router import route_by_type
from caesar_scheduler.handlers import HANDLERS, SchedulerDeps

# QUEUED/HELD are the scheduler's own events: not bound, so they never come back.
SCHEDULER_QUEUE = QueueSpec(
    "scheduler.events",
    bindings=(
        "job.submitted",
        "job.cancel_requested",
        "job.state.started",
        "job.state.running",
        "job.state.success",
        "job.state.failure",
        "job.state.timed-out",
        "job.state.canceled",
        "job.state.aborted",
        "runner.heartbeat",
    ),
)


def dispatcher(deps: SchedulerDeps) -> Handler:
    return route_by_type(HANDLERS, deps)

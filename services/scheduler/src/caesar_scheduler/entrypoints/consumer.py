"""The ``scheduler.events`` queue and the dispatcher from envelopes to handlers."""

from __future__ import annotations

from functools import partial

from caesar_common.bus import BatchHandler, Handler, QueueSpec
from caesar_common.message_router import route_by_type
from caesar_scheduler.handlers import HANDLERS, SchedulerDeps, on_batch

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
        "quota.changed",
    ),
)


def dispatcher(deps: SchedulerDeps) -> Handler:
    return route_by_type(HANDLERS, deps)


def batch_dispatcher(deps: SchedulerDeps) -> BatchHandler:
    """Deliveries taken together: a backlog costs a few bulk writes per batch."""
    return partial(on_batch, deps=deps)

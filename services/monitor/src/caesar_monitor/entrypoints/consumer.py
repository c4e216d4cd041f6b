"""The monitor's queues and their bus handler (lag metric, then the message router).

Heartbeats have a queue of their own: on ``monitor.events`` they waited behind every job
event, so a backlog of job events made a healthy runner look silent to the watchdog.
Both queues share one handler table; each is consumed on its own channel.

An existing ``monitor.events`` keeps the ``runner.heartbeat`` binding of earlier
versions (the bus only adds bindings); ``bootstrap`` removes it at start. Until then a
heartbeat may also arrive there, late: it is older than the one stored from
``monitor.heartbeats`` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from caesar_common.bus import BatchHandler, Handler, QueueSpec
from caesar_common.events import Envelope, RunnerHeartbeat
from caesar_common.message_router import route_by_type
from caesar_monitor import metrics
from caesar_monitor.handlers import HANDLERS, on_batch
from caesar_monitor.service.deps import MonitorDeps

HEARTBEAT_KEY = RunnerHeartbeat.type_name

MONITOR_QUEUE = QueueSpec(
    "monitor.events",
    bindings=("job.submitted", "job.state.*", "job.cancel_requested"),
)
HEARTBEAT_QUEUE = QueueSpec("monitor.heartbeats", bindings=(HEARTBEAT_KEY,))


def _observe_lag(deps: MonitorDeps, envelope: Envelope) -> None:
    lag = (deps.clock() - envelope.time).total_seconds()
    metrics.EVENT_LAG.observe(max(0.0, lag))


def events_handler(deps: MonitorDeps) -> Handler:
    """The bus handler: measure the event's lag, then route it to its handler."""
    route = route_by_type(HANDLERS, deps)

    async def measured(envelope: Envelope) -> None:
        _observe_lag(deps, envelope)
        await route(envelope)

    return measured


def events_batch_handler(deps: MonitorDeps) -> BatchHandler:
    """Job events taken together: one read and one write for a whole batch of timelines."""

    async def measured(envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            _observe_lag(deps, envelope)
        await on_batch(envelopes, deps)

    return measured

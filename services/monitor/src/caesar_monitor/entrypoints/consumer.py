"""The ``monitor.events`` queue and its bus handler (lag metric, then the message router)."""

from __future__ import annotations

from caesar_common.bus import Handler, QueueSpec
from caesar_common.events import Envelope
from caesar_common.message_router import route_by_type
from caesar_monitor import metrics
from caesar_monitor.handlers import HANDLERS
from caesar_monitor.service.deps import MonitorDeps

MONITOR_QUEUE = QueueSpec(
    "monitor.events",
    bindings=("job.submitted", "job.state.*", "job.cancel_requested", "runner.heartbeat"),
)


def events_handler(deps: MonitorDeps) -> Handler:
    """The bus handler: measure the event's lag, then route it to its handler."""
    route = route_by_type(HANDLERS, deps)

    async def measured(envelope: Envelope) -> None:
        lag = (deps.clock() - envelope.time).total_seconds()
        metrics.EVENT_LAG.observe(max(0.0, lag))
        await route(envelope)

    return measured

"""The ``monitor.events`` queue and the dispatcher from envelopes to handlers."""

from __future__ import annotations

from caesar_common.bus import Handler, QueueSpec
from caesar_common.events import Envelope, decode
from caesar_common.logging import get_logger
from caesar_monitor import metrics
from caesar_monitor.handlers import HANDLERS, MonitorDeps

log = get_logger(__name__)

MONITOR_QUEUE = QueueSpec(
    "monitor.events",
    bindings=("job.submitted", "job.state.*", "job.cancel_requested", "runner.heartbeat"),
)


def dispatcher(deps: MonitorDeps) -> Handler:
    """The bus handler: measure the event's lag, decode it, run its handler."""

    async def dispatch(envelope: Envelope) -> None:
        lag = (deps.clock() - envelope.time).total_seconds()
        metrics.EVENT_LAG.observe(max(0.0, lag))
        try:
            message = decode(envelope)
        except KeyError:
            # A newer producer's event type: not ours to understand, and no reason to
            # dead-letter it either.
            log.info("unknown event type ignored", type=envelope.type, event_id=envelope.id)
            return
        handler = HANDLERS.get(type(message))
        if handler is None:
            log.info("event without monitor handler ignored", type=envelope.type)
            return
        await handler(message, envelope, deps)

    return dispatch

"""The event consumer: ``job.state.*`` -> the handlers of :mod:`caesar_api.handlers`.

The api owns the quorum queue ``api.job-states`` bound to ``job.state.*``; the bus acks
a message only after the handler's write, and dead-letters it after its delivery limit
(a malformed event fails to decode and goes there too).
"""

from __future__ import annotations

from caesar_api.dependencies import Dependencies
from caesar_api.handlers import HANDLERS
from caesar_common.bus import Bus, QueueSpec, Subscription
from caesar_common.message_router import route_by_type

JOB_STATES_QUEUE = QueueSpec("api.job-states", bindings=["job.state.*"])


async def start_projection(bus: Bus, deps: Dependencies, *, prefetch: int = 32) -> Subscription:
    """Consume job state events and project them onto the ``jobs`` collection."""
    return await bus.consume(JOB_STATES_QUEUE, route_by_type(HANDLERS, deps), prefetch=prefetch)

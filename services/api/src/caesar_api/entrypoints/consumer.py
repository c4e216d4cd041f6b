"""The event consumer: ``job.state.*`` -> the handlers of :mod:`caesar_api.handlers`.

The api owns the quorum queue ``api.job-states`` bound to ``job.state.*``; the bus acks
a message only after the handler's write, and dead-letters it after its delivery limit
(a malformed event fails to decode and goes there too).
"""

from __future__ import annotations

from functools import partial

from caesar_api.dependencies import Dependencies
from caesar_api.handlers import HANDLERS, on_job_states
from caesar_common.bus import Bus, QueueSpec, Subscription
from caesar_common.message_router import route_by_type

JOB_STATES_QUEUE = QueueSpec("api.job-states", bindings=["job.state.*"])
# Its own queue: a backlog of job states must not delay a pool's status, and vice versa.
POOL_STATUS_QUEUE = QueueSpec("api.pool-status", bindings=["pool.status"])


async def start_projection(bus: Bus, deps: Dependencies, *, prefetch: int = 256) -> Subscription:
    """Consume job state events (onto ``jobs``) and pool statuses (onto ``pools``)."""
    await bus.consume(POOL_STATUS_QUEUE, route_by_type(HANDLERS, deps), prefetch=4)
    # Taken in batches: a backlog of state changes costs one read and one write per batch.
    return await bus.consume(
        JOB_STATES_QUEUE,
        route_by_type(HANDLERS, deps),
        prefetch=prefetch,
        batch=partial(on_job_states, deps=deps),
    )

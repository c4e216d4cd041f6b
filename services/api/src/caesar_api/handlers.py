"""One plain async function per message type the api consumes, and the table routing to them.

The api reads ``JobStateChanged`` (its jobs read model) and ``PoolStatus`` (whether a
pool has a runner); every handler is idempotent, so a redelivered event changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from caesar_api.dependencies import Dependencies
from caesar_api.push.wiring import after_projection
from caesar_api.service.projection import apply_job_state, apply_job_states_together
from caesar_common.events import Envelope, JobStateChanged, PoolStatus
from caesar_common.message_router import HandlerTable, decode_known, route_by_type


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: Dependencies) -> None:
    """Project a state change onto the job's record (if it moves the job forward), then
    make its webhook deliveries (if it was applied, now or before)."""
    await apply_job_state(deps.jobs, message)
    await after_projection(deps.push, [message])


async def on_pool_status(message: PoolStatus, envelope: Envelope, deps: Dependencies) -> None:
    """Keep the pool's latest status (status routes tell waiting jobs if nobody serves it)."""
    await deps.pools.record(message)


HANDLERS: HandlerTable[Dependencies] = {
    JobStateChanged: on_job_state_changed,
    PoolStatus: on_pool_status,
}


async def on_job_states(envelopes: Sequence[Envelope], deps: Dependencies) -> None:
    """A batch of deliveries: the state changes with one read and one write, the rest one by one."""
    changes: list[JobStateChanged] = []
    route = route_by_type(HANDLERS, deps)
    for envelope in envelopes:
        message = decode_known(envelope)
        if isinstance(message, JobStateChanged):
            changes.append(message)
        else:
            await route(envelope)
    await apply_job_states_together(deps.jobs, changes)
    # Webhooks: this consumer is the competing one, so each event's deliveries are made once.
    await after_projection(deps.push, changes)

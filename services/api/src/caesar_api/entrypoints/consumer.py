"""The event consumer: ``JobStateChanged`` -> the jobs read model.

The api owns the quorum queue ``api.job-states`` bound to ``job.state.*``; the bus acks
a message only after the handler's write, and dead-letters it after its delivery limit.
"""

from __future__ import annotations

from caesar_api.adapters.jobs_repo import JobsRepository
from caesar_api.handlers.projection import apply_job_state
from caesar_api.settings import ApiSettings
from caesar_common.bus import QueueSpec, Subscription
from caesar_common.events import Envelope, JobStateChanged, decode_as
from caesar_common.logging import get_logger
from caesar_common.runtime import ServiceRuntime

log = get_logger(__name__)

JOB_STATES_QUEUE = QueueSpec("api.job-states", bindings=["job.state.*"])


async def start_projection(runtime: ServiceRuntime[ApiSettings], *, prefetch: int = 32) -> Subscription:
    """Consume job state events and project them onto the ``jobs`` collection."""
    jobs = JobsRepository(runtime.collection("jobs"), runtime.name)

    async def on_event(envelope: Envelope) -> None:
        if envelope.type != JobStateChanged.event_type():
            log.info("event of another type ignored", type=envelope.type, id=envelope.id)
            return
        # A malformed event raises ValidationError: the bus dead-letters it.
        await apply_job_state(jobs, decode_as(envelope, JobStateChanged))

    return await runtime.bus.consume(JOB_STATES_QUEUE, on_event, prefetch=prefetch)

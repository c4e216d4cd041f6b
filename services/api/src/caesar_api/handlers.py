"""One plain async function per message type the api consumes, and the table routing to them.

The api only reads ``JobStateChanged`` (its jobs read model); every handler is
idempotent, so a redelivered event changes nothing.
"""

from __future__ import annotations

from caesar_api.dependencies import Dependencies
from caesar_api.service.projection import apply_job_state
from caesar_common.events import Envelope, JobStateChanged
from caesar_common.message_router import HandlerTable


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: Dependencies) -> None:
    """Project a state change onto the job's record (if it moves the job forward)."""
    await apply_job_state(deps.jobs, message)


HANDLERS: HandlerTable[Dependencies] = {
    JobStateChanged: on_job_state_changed,
}

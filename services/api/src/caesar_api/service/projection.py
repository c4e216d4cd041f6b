"""The projection of ``JobStateChanged`` events onto the api's jobs read model."""

from __future__ import annotations

from caesar_api.domain.projection import position_of, transition_fields
from caesar_api.service.ports import JobStore
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import is_terminal, supersedes
from caesar_common.logging import get_logger

log = get_logger(__name__)

RACE_TRIES = 10


class ProjectionRaceError(RuntimeError):
    """Another writer kept moving the job; the bus retries the event later."""


async def apply_job_state(jobs: JobStore, event: JobStateChanged) -> bool:
    """Apply ``event`` if it moves the job forward; return whether it was applied.

    Duplicates and late events (a RUNNING after SUCCESS) are ignored by
    :func:`~caesar_common.jobstate.supersedes`. The write is guarded by the position
    read, so two consumers applying different events never lose one: the loser of a race
    re-reads and decides again.
    """
    if event.retryable and is_terminal(event.state):
        # Provisional: the scheduler either retries the job (a new attempt) or closes it
        # for good (ABORTED). Clients must never see a terminal state that is undone.
        return False
    for _ in range(RACE_TRIES):
        job = await jobs.get_any(event.job_id)
        if job is None:
            log.warning("state event for an unknown job ignored", job_id=event.job_id)
            return False
        if job["owner"] != event.owner:
            log.warning("state event with a foreign owner ignored", job_id=event.job_id, owner=event.owner)
            return False
        held = position_of(job)
        if not supersedes(event.position, held):
            return False
        if await jobs.move(job, transition_fields(held.attempt, event)):
            return True
    raise ProjectionRaceError(f"job {event.job_id} kept changing while projecting an event")

"""The projection of ``JobStateChanged`` events onto the api's jobs read model."""

from __future__ import annotations

from collections.abc import Sequence

from caesar_api.domain.projection import plan_moves, transition_fields
from caesar_api.service.ports import JobStore
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import HeldBefore, JobState, is_terminal


async def apply_job_state(jobs: JobStore, event: JobStateChanged) -> bool:
    """Apply ``event`` if it moves the job forward; return whether it was applied.

    One guarded write, no read: the guard is :func:`~caesar_common.jobstate.supersedes`
    as a filter (:class:`~caesar_common.jobstate.HeldBefore`), so duplicates, late events
    (a RUNNING after SUCCESS), an unknown job or a foreign owner match nothing, and two
    consumers applying different events of one job can never lose one. A second write is
    tried only when the event is on the other side of the held attempt than guessed.
    """
    if event.retryable and is_terminal(event.state):
        # Provisional: the scheduler either retries the job (a new attempt) or closes it
        # for good (ABORTED). Clients must never see a terminal state that is undone.
        return False
    tries = [
        (True, transition_fields(event, new_attempt=False)),
        (False, transition_fields(event, new_attempt=True)),
    ]
    if event.state is JobState.QUEUED:
        tries.reverse()  # a QUEUED usually opens an attempt
    for same_attempt, fields in tries:
        if await jobs.move_from(event.job_id, event.owner, HeldBefore(event.position, same_attempt), fields):
            return True
    return False


async def apply_job_states_together(jobs: JobStore, events: Sequence[JobStateChanged]) -> int:
    """Apply a batch of events with one read and one write, however many jobs; how many applied.

    Planned exactly as one by one (:func:`~caesar_api.domain.projection.plan_moves`, each
    event on the position the previous one left), written as one guarded update per job
    in a single ``bulk_write``. If another writer moved one of the jobs between the read
    and the write, its guard fails and the batch is applied again one event at a time
    (every event is idempotent, so those already written change nothing).
    """
    shown = [e for e in events if not (e.retryable and is_terminal(e.state))]
    if not shown:
        return 0
    moves = plan_moves(await jobs.positions(e.job_id for e in shown), shown)
    if not moves:
        return 0
    if await jobs.move_many(moves):
        return sum(m.applied for m in moves)
    applied = 0
    for event in shown:
        applied += await apply_job_state(jobs, event)
    return applied

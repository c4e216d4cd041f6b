"""Recording usage once, whatever the number of deliveries, and keeping the gauge right."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from caesar_accounting import metrics
from caesar_accounting.domain.usage import UsageChange, plan_batch, plan_change
from caesar_accounting.service.ports import FileUsageStore, JobUsageStore
from caesar_common.events import FileDeleted, FileUploaded, JobStateChanged

RACE_TRIES = 10


class UsageRaceError(RuntimeError):
    """Another writer kept changing the job's usage; the bus retries the event later."""


async def record_state(message: JobStateChanged, jobs: JobUsageStore) -> UsageChange | None:
    """Follow the job's position, record its outcome once, and each attempt's usage once.

    Returns the change this call wrote (``None`` for a duplicate or a late event). The
    write is guarded on the revision read, so two replicas handling events of one job
    never lose one: the loser re-reads and decides again. The outcome metrics move only
    for the write that recorded the outcome, so redeliveries never inflate them.
    """
    for _ in range(RACE_TRIES):
        doc = await jobs.get(message.job_id)
        change = plan_change(doc, message)
        if change is None:
            return None
        revision = int((doc or {}).get("rev") or 0)
        if await jobs.apply(message.job_id, message.owner, message.app, revision, change):
            if change.outcome is not None:
                metrics.count_outcome(change.outcome)
            return change
    raise UsageRaceError(f"job {message.job_id} kept changing while accounting an event")


async def record_states_together(messages: Sequence[JobStateChanged], jobs: JobUsageStore) -> None:
    """Record a batch of state events with one read and one write, however many jobs.

    Planned exactly as one by one (:func:`~caesar_accounting.domain.usage.plan_batch`,
    each event on the document as the previous one left it), written as one
    compare-and-set per job. A job whose write loses to another writer (a replica) is
    recorded again one event at a time from a fresh read.
    """
    if not messages:
        return
    docs = await jobs.get_many({m.job_id for m in messages})
    writes, _ = plan_batch(docs, list(messages))
    lost = await jobs.apply_many(writes) if writes else set()
    for write in writes:
        if write.job_id in lost:
            for message in write.messages:
                await record_state(message, jobs)
        else:
            for outcome in write.outcomes:
                metrics.count_outcome(outcome)


async def record_upload(message: FileUploaded, files: FileUsageStore) -> bool:
    """Record an upload; the bytes-stored gauge is recomputed when it changed anything."""
    if not await files.record_upload(message):
        return False
    await refresh_bytes_stored(files)
    return True


async def record_deletion(message: FileDeleted, deleted_at: datetime, files: FileUsageStore) -> bool:
    """Record a deletion (it may overtake its upload); recompute the gauge if it changed."""
    if not await files.record_deletion(message, deleted_at):
        return False
    await refresh_bytes_stored(files)
    return True


async def refresh_bytes_stored(files: FileUsageStore) -> None:
    """Recomputed from the database, not counted: right in every replica and after restarts."""
    metrics.BYTES_STORED.set(await files.bytes_stored())

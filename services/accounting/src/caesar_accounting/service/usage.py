"""Recording usage once, whatever the number of deliveries, and keeping the gauge right."""

from __future__ import annotations

from datetime import datetime

from caesar_accounting import metrics
from caesar_accounting.domain.usage import FinalOutcome, recorded_position, should_record
from caesar_accounting.service.ports import FileUsageStore, JobUsageStore
from caesar_common.events import FileDeleted, FileUploaded, JobStateChanged


async def record_outcome(message: JobStateChanged, jobs: JobUsageStore) -> FinalOutcome | None:
    """Account a final outcome once; retryable failures and repeats change nothing.

    Returns the outcome when this call recorded it (and counted it in the metrics).
    """
    held = recorded_position(await jobs.get(message.job_id))
    if not should_record(message, held):
        return None
    outcome = FinalOutcome.of(message)
    if not await jobs.record_outcome(outcome):
        return None
    metrics.count_outcome(outcome)
    return outcome


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

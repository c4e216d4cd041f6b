"""One plain async function per message type; each is idempotent by construction."""

from __future__ import annotations

from dataclasses import dataclass

from caesar_accounting import metrics
from caesar_accounting.adapters.files import FileUsageRepository
from caesar_accounting.adapters.jobs import JobUsageRepository
from caesar_accounting.domain.usage import FinalOutcome, recorded_position, should_record
from caesar_common.events import (
    Envelope,
    FileDeleted,
    FileUploaded,
    JobStateChanged,
    JobSubmitted,
)
from caesar_common.message_router import HandlerTable


@dataclass
class AccountingDeps:
    """What the handlers need; chosen once, in ``bootstrap``."""

    jobs: JobUsageRepository
    files: FileUsageRepository


async def on_job_submitted(message: JobSubmitted, envelope: Envelope, deps: AccountingDeps) -> None:
    await deps.jobs.record_submission(message)


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: AccountingDeps) -> None:
    """Account a final outcome once; retryable failures and repeats change nothing."""
    held = recorded_position(await deps.jobs.get(message.job_id))
    if not should_record(message, held):
        return
    outcome = FinalOutcome.of(message)
    if await deps.jobs.record_outcome(outcome):
        metrics.count_outcome(outcome)


async def on_file_uploaded(message: FileUploaded, envelope: Envelope, deps: AccountingDeps) -> None:
    if await deps.files.record_upload(message):
        await refresh_bytes_stored(deps)


async def on_file_deleted(message: FileDeleted, envelope: Envelope, deps: AccountingDeps) -> None:
    # FileDeleted carries no timestamp of its own; the envelope's creation time is it.
    if await deps.files.record_deletion(message, envelope.time):
        await refresh_bytes_stored(deps)


async def refresh_bytes_stored(deps: AccountingDeps) -> None:
    metrics.BYTES_STORED.set(await deps.files.bytes_stored())


HANDLERS: HandlerTable[AccountingDeps] = {
    JobSubmitted: on_job_submitted,
    JobStateChanged: on_job_state_changed,
    FileUploaded: on_file_uploaded,
    FileDeleted: on_file_deleted,
}

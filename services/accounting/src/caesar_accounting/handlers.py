"""One plain async function per message type, and the table that routes them.

Each is idempotent by construction: the repositories write each fact once (guarded on
its field being unset, or on the revision the decision was made from), and the use
cases in :mod:`caesar_accounting.service` count a metric only when their write was the
first.
"""

from __future__ import annotations

from dataclasses import dataclass

from caesar_accounting.service.ports import FileUsageStore, JobUsageStore
from caesar_accounting.service.usage import (
    record_deletion,
    record_state,
    record_upload,
    refresh_bytes_stored,
)
from caesar_common.events import (
    Envelope,
    FileDeleted,
    FileUploaded,
    JobStateChanged,
    JobSubmitted,
)
from caesar_common.message_router import HandlerTable

__all__ = ["HANDLERS", "AccountingDeps", "refresh_bytes_stored"]


@dataclass
class AccountingDeps:
    """What the handlers need; chosen once, in ``bootstrap``."""

    jobs: JobUsageStore
    files: FileUsageStore


async def on_job_submitted(message: JobSubmitted, envelope: Envelope, deps: AccountingDeps) -> None:
    await deps.jobs.record_submission(message)


async def on_job_state_changed(message: JobStateChanged, envelope: Envelope, deps: AccountingDeps) -> None:
    await record_state(message, deps.jobs)


async def on_file_uploaded(message: FileUploaded, envelope: Envelope, deps: AccountingDeps) -> None:
    await record_upload(message, deps.files)


async def on_file_deleted(message: FileDeleted, envelope: Envelope, deps: AccountingDeps) -> None:
    # FileDeleted carries no timestamp of its own; the envelope's creation time is it.
    await record_deletion(message, envelope.time, deps.files)


HANDLERS: HandlerTable[AccountingDeps] = {
    JobSubmitted: on_job_submitted,
    JobStateChanged: on_job_state_changed,
    FileUploaded: on_file_uploaded,
    FileDeleted: on_file_deleted,
}

"""What accounting's use cases need from its database, as interfaces.

The MongoDB repositories in :mod:`caesar_accounting.adapters` implement them; unit tests
pass in-memory fakes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from caesar_accounting.domain.usage import FinalOutcome
from caesar_common.events import FileDeleted, FileUploaded, JobSubmitted
from caesar_common.store import Document


class JobUsageStore(Protocol):
    """One document per job, written at most twice (submission, final outcome)."""

    async def get(self, job_id: str) -> Document | None: ...

    async def record_submission(self, message: JobSubmitted) -> bool: ...

    async def record_outcome(self, outcome: FinalOutcome) -> bool:
        """``True`` only for the call that recorded the outcome first."""
        ...

    async def of_owner(self, owner: str) -> list[Document]: ...

    async def everyone(self) -> list[Document]: ...


class FileUsageStore(Protocol):
    """One document per uploaded file (upload and deletion each written once)."""

    async def record_upload(self, message: FileUploaded) -> bool: ...

    async def record_deletion(self, message: FileDeleted, deleted_at: datetime) -> bool: ...

    async def of_owner(self, owner: str) -> list[Document]: ...

    async def everyone(self) -> list[Document]: ...

    async def bytes_stored(self) -> int: ...

"""What accounting's use cases need from its database, as interfaces.

The MongoDB repositories in :mod:`caesar_accounting.adapters` implement them; unit tests
pass in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from caesar_accounting.domain.usage import BatchedWrite, UsageChange
from caesar_common.events import FileDeleted, FileUploaded, JobSubmitted
from caesar_common.store import Document


class JobUsageStore(Protocol):
    """One document per job: its submission, the api's position, outcome and attempts."""

    async def get(self, job_id: str) -> Document | None: ...

    async def get_many(self, job_ids: Collection[str]) -> dict[str, Document]:
        """The documents of those jobs that have one, by job id (one read)."""
        ...

    async def record_submissions(self, messages: Sequence[JobSubmitted]) -> int:
        """Record each submission unless already recorded (one write); how many were new."""
        ...

    async def apply_many(self, writes: Sequence[BatchedWrite]) -> set[str]:
        """Write each job's batched change if still at its revision (one write).

        Returns the job ids whose compare-and-set lost (another writer moved them).
        """
        ...

    async def record_submission(self, message: JobSubmitted) -> bool: ...

    async def apply(self, job_id: str, owner: str, app: str, revision: int, change: UsageChange) -> bool:
        """Write ``change`` if the document is still at ``revision`` (0: none or unversioned).

        ``True`` only for the call that wrote it; ``False`` means another writer moved the
        document since it was read, and the caller decides again on a fresh read.
        """
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

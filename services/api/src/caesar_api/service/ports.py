"""The interfaces the use cases need from the outside world.

The MongoDB repositories and the upload storage in :mod:`caesar_api.adapters` implement
them; unit tests pass in-memory fakes. Writes that carry events (``add``,
``request_cancel``, ``mark_deleted``) store them in the record's outbox in the same
write, and the repository hands them to the relay right after.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from caesar_api.adapters.pagination import Page
from caesar_api.domain.projection import ProjectedMove
from caesar_api.domain.quota import Usage
from caesar_common.events import FileUploaded, JobSubmitted
from caesar_common.jobstate import HeldBefore
from caesar_common.store import Document


class JobStore(Protocol):
    """The jobs read model: one record per job, moved forward by guarded writes."""

    async def add(self, record: Document, event: JobSubmitted) -> None: ...

    async def get(self, owner: str, job_id: str) -> Document | None: ...

    async def get_any(self, job_id: str) -> Document | None: ...

    async def list(self, owner: str, limit: int, after: Document | None) -> Page: ...

    async def request_cancel(self, job: Document, requested_at: datetime) -> bool: ...

    async def reannounce_pending(self, announced_before: datetime, now: datetime, *, limit: int = 500) -> int:
        """Publish ``JobSubmitted`` again for jobs still PENDING since before the instant."""
        ...

    async def move_from(self, job_id: str, owner: str, held: HeldBefore, fields: dict[str, Any]) -> bool:
        """Set ``fields`` on the owner's job if its position is one ``held`` matches."""
        ...

    async def positions(self, job_ids: Iterable[str]) -> dict[str, Document]:
        """Owner and position (``attempt``, ``state``, ``retryable``) of the jobs that exist."""
        ...

    async def move_many(self, moves: Sequence[ProjectedMove]) -> bool:
        """Apply every move whose guard (the position it was planned on) holds; False if one did not."""
        ...


class FileStore(Protocol):
    """The records of uploaded files (deleted ones stay, marked)."""

    async def add(self, record: Document, event: FileUploaded) -> None: ...

    async def get(self, owner: str, file_id: str) -> Document | None: ...

    async def get_any(self, file_id: str) -> Document | None: ...

    async def get_cursor(self, owner: str, file_id: str) -> Document | None: ...

    async def list(self, owner: str, limit: int, after: Document | None) -> Page: ...

    async def mark_deleted(self, record: Document) -> bool: ...

    async def usage(self, owner: str) -> Usage:
        """What the owner's live files take (the quota's figures)."""
        ...


class FileSpace(Protocol):
    """Where stored files live."""

    def path_of(self, owner: str, file_id: str, ext: str) -> Path: ...

    async def remove(self, owner: str, file_id: str, ext: str) -> None: ...


class PendingUpload(Protocol):
    """An upload's bytes in a temporary file, waiting to be kept or dropped."""

    temp: Path
    size: int

    async def commit(self, final: Path) -> None: ...

    async def discard(self) -> None: ...

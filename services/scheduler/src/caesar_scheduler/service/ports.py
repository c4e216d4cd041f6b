"""What the use cases need from the outside world, as interfaces.

The MongoDB repository (:class:`caesar_scheduler.adapters.jobs.SchedulerJobs`) implements
:class:`JobStore`; unit tests pass an in-memory fake. ``Kick`` asks the outbox relay to
publish a job document's pending events now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from caesar_common.events import Envelope
from caesar_common.store import Document

Kick = Callable[[str], None]


class JobStore(Protocol):
    """The scheduler's jobs; every change is guarded and carries its events (outbox)."""

    async def get(self, job_id: str) -> Document | None: ...

    async def insert(self, doc: Document, events: list[Envelope]) -> bool:
        """Insert with events; ``False`` if the job exists (a duplicate submission)."""
        ...

    async def insert_early_cancel(self, job_id: str, owner: str) -> bool: ...

    async def transition(
        self,
        job_id: str,
        expect: dict[str, Any],
        changes: dict[str, Any],
        events: Sequence[Envelope] = (),
        commands: Sequence[tuple[Envelope, str]] = (),
    ) -> bool:
        """Apply ``changes`` and queue events/commands only if the job matches ``expect``."""
        ...

    async def waiting(self, now: datetime, limit: int = 5000) -> list[Document]: ...

    async def active_by_pool_and_owner(self) -> dict[str, dict[str, int]]: ...

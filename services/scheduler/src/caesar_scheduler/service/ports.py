"""What the use cases need from the outside world, as interfaces.

The MongoDB repository (:class:`caesar_scheduler.adapters.jobs.SchedulerJobs`) implements
:class:`JobStore`; unit tests pass an in-memory fake. ``Kick`` hands the outbox
relay the events a write appended, to
publish a job document's pending events now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from caesar_common.events import Envelope
from caesar_common.jobstate import HeldBefore
from caesar_common.outbox import Kick as Kick
from caesar_common.store import Document
from caesar_scheduler.domain.advance import PlannedAdvance
from caesar_scheduler.domain.fairshare import OwnerBacklog


class JobStore(Protocol):
    """The scheduler's jobs; every change is guarded and carries its events (outbox)."""

    async def get(self, job_id: str) -> Document | None: ...

    async def get_many(self, job_ids: Iterable[str]) -> dict[str, Document]: ...

    async def advance_many(self, moves: Sequence[PlannedAdvance]) -> set[str]:
        """Apply the planned moves, each guarded by the record read; the jobs to redo one by one."""
        ...

    async def waiting_before(self, pool: str, queued_before: datetime, limit: int) -> list[Document]:
        """Up to ``limit`` jobs of ``pool`` still waiting that were queued before the instant."""
        ...

    async def advance(self, job_id: str, held: HeldBefore, changes: dict[str, Any]) -> bool:
        """Apply ``changes`` to an admitted job whose position ``held`` matches."""
        ...

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

    async def waiting_owners(self, now: datetime) -> dict[str, list[OwnerBacklog]]:
        """Per pool, each owner with jobs ready to dispatch (``queued_at <= now``): how many, oldest."""
        ...

    async def oldest_waiting(self, pool: str, owner: str, now: datetime, limit: int) -> list[Document]:
        """The owner's ``limit`` oldest ready jobs in ``pool``, by ``(queued_at, _id)``."""
        ...

    async def unstarted(self, sent_before: datetime) -> list[Document]:
        """Dispatched jobs still QUEUED (no runner reported STARTED) last sent before then."""
        ...

    async def active_by_pool_and_owner(self) -> dict[str, dict[str, int]]: ...

    async def held_of(self, owner: str) -> list[Document]:
        """The owner's jobs held for quota (phase ``held``)."""
        ...


class QuotaVerdicts(Protocol):
    """The newest quota verdict per user, as accounting announced it."""

    async def hold_reason(self, owner: str) -> str | None:
        """Why the owner's new jobs are held (``None``: under quota, or never judged)."""
        ...

    async def record(self, owner: str, revision: int, over: bool, reason: str) -> bool:
        """Keep a verdict unless a newer one (higher ``revision``) is already kept."""
        ...

"""What the monitor's use cases need from its database, as interfaces.

The MongoDB repositories in :mod:`caesar_monitor.adapters` implement them; unit tests
pass in-memory fakes. ``Kick`` hands the outbox
relay the events a write appended, to publish a timeline's events now.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from caesar_common.events import RunnerHeartbeat
from caesar_common.jobstate import JobPosition, JobState
from caesar_common.outbox import Kick as Kick
from caesar_common.store import Document
from caesar_monitor.domain.liveness import RunnerReport
from caesar_monitor.domain.timeline import Entry


@dataclass
class TimelineMove:
    """What a batch of events does to one timeline: new entries, fields, from ``held``."""

    job_id: str
    held: JobPosition | None
    fields: dict[str, Any] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)


class TimelineStore(Protocol):
    """One document per job: its entries and its current position."""

    async def append(self, job_id: str, entry: Entry, fields: Mapping[str, Any]) -> bool:
        """Add ``entry`` unless its event id is there; set ``fields`` with it."""
        ...

    async def load(self, job_id: str) -> Document | None: ...

    async def load_many(self, job_ids: Collection[str]) -> dict[str, Document]:
        """The timelines of those jobs that have one, by job id (one read)."""
        ...

    async def move_many(self, moves: Sequence[TimelineMove]) -> set[str]:
        """Apply each move while its timeline holds its position and lacks its entries
        (one write); returns the job ids whose move did not apply."""
        ...

    async def move(
        self,
        job_id: str,
        held: JobPosition | None,
        fields: Mapping[str, Any],
        *,
        entry: Entry | None = None,
        also: Document | None = None,
    ) -> bool:
        """Set the new position only while the document holds ``held``."""
        ...

    async def executing(self) -> list[Document]: ...

    async def count_by_state(self) -> dict[JobState, int]: ...

    async def oldest_change_by_state(self, states: Collection[JobState]) -> dict[JobState, datetime]:
        """The earliest ``last_change`` of the jobs in each of ``states`` (absent: none there)."""
        ...

    async def entries(self, job_id: str) -> Sequence[Entry] | None: ...


class RunnerStore(Protocol):
    """The latest heartbeat of every runner, and the attempts its heartbeats reported."""

    async def report(self, runner_id: str) -> RunnerReport | None: ...

    async def record(
        self, heartbeat: RunnerHeartbeat, report: RunnerReport, *, replaces: datetime | None
    ) -> bool:
        """Store ``heartbeat``'s slots and ``report`` while the stored heartbeat is still
        the one sent at ``replaces`` (``None``: none stored); ``False`` if it is not."""
        ...

    async def reports(self, runner_ids: Iterable[str]) -> dict[str, RunnerReport]: ...

    async def slots_by_pool(self, alive_since: datetime) -> dict[str, tuple[int, int]]: ...

    async def heard_since(self, since: datetime) -> dict[str, tuple[str, datetime]]:
        """``{runner_id: (pool, last_seen)}`` of the runners heard from since ``since``."""
        ...

    async def forget_silent(self, silent_since: datetime) -> int:
        """Delete runners not heard from since ``silent_since``; return how many."""
        ...

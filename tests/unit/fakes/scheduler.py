"""Fakes of the scheduler's job store and outbox relay."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from caesar_common.events import Envelope
from caesar_common.jobstate import HeldBefore, JobPosition, JobState
from caesar_common.store import Document
from caesar_scheduler.domain.advance import PlannedAdvance
from caesar_scheduler.domain.fairshare import OwnerBacklog
from caesar_scheduler.domain.phases import DISPATCHED, EARLY_CANCEL, FINISHED, HELD, WAITING


def _holds(doc: Document, key: str, expected: Any) -> bool:
    if expected == {"$exists": False}:
        return key not in doc
    return key in doc and doc[key] == expected


class FakeJobStore:
    """Jobs in a dict; ``transition`` is guarded like the MongoDB ``update_one``."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.events: list[Envelope] = []
        """Every event written to an outbox, in order (what the relay would publish)."""
        self.commands: list[tuple[Envelope, str]] = []
        self.reads: list[tuple[str, str, int]] = []
        """Every ``oldest_waiting`` call as ``(pool, owner, limit)``: what a round read."""

    async def get(self, job_id: str) -> Document | None:
        doc = self.docs.get(job_id)
        return copy.deepcopy(doc) if doc is not None else None

    async def get_many(self, job_ids: Iterable[str]) -> dict[str, Document]:
        return {j: copy.deepcopy(self.docs[j]) for j in set(job_ids) if j in self.docs}

    async def advance_many(self, moves: Sequence[PlannedAdvance]) -> set[str]:
        """As the repository: all or nothing is reported, each move applied where its guard holds."""
        matched = 0
        for move in moves:
            doc = self.docs.get(move.job_id)
            if doc is not None and all(_holds(doc, k, v) for k, v in move.guard.items()):
                doc.update(copy.deepcopy(move.changes))
                matched += 1
        return set() if matched == len(moves) else {m.job_id for m in moves}

    async def waiting_before(self, pool: str, queued_before: datetime, limit: int) -> list[Document]:
        found = [
            copy.deepcopy(d)
            for d in self.docs.values()
            if d.get("phase") == WAITING and d.get("pool") == pool and d["queued_at"] <= queued_before
        ]
        return found[:limit]

    async def advance(self, job_id: str, held: HeldBefore, changes: dict[str, Any]) -> bool:
        doc = self.docs.get(job_id)
        if doc is None or doc.get("phase") not in (WAITING, DISPATCHED, FINISHED):
            return False
        position = JobPosition(doc["attempt"], JobState(doc["state"]), bool(doc.get("retryable")))
        if not held.matches(position):
            return False
        doc.update(copy.deepcopy(changes))
        return True

    async def insert(self, doc: Document, events: list[Envelope]) -> bool:
        if doc["_id"] in self.docs:
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        self.events.extend(events)
        return True

    async def insert_early_cancel(self, job_id: str, owner: str) -> bool:
        if job_id in self.docs:
            return False
        self.docs[job_id] = {"_id": job_id, "owner": owner, "phase": EARLY_CANCEL}
        return True

    async def transition(
        self,
        job_id: str,
        expect: dict[str, Any],
        changes: dict[str, Any],
        events: Sequence[Envelope] = (),
        commands: Sequence[tuple[Envelope, str]] = (),
    ) -> bool:
        doc = self.docs.get(job_id)
        if doc is None or any(doc.get(k) != v for k, v in expect.items()):
            return False
        doc.update(copy.deepcopy(changes))
        self.events.extend(events)
        self.commands.extend(commands)
        return True

    def _ready(self, now: datetime) -> list[Document]:
        return [d for d in self.docs.values() if d.get("phase") == WAITING and d["queued_at"] <= now]

    async def waiting_owners(self, now: datetime) -> dict[str, list[OwnerBacklog]]:
        groups: dict[tuple[str, str], list[datetime]] = {}
        for doc in self._ready(now):
            groups.setdefault((doc.get("pool", ""), doc["owner"]), []).append(doc["queued_at"])
        by_pool: dict[str, list[OwnerBacklog]] = {}
        for (pool, owner), times in groups.items():
            by_pool.setdefault(pool, []).append(OwnerBacklog(owner, min(times), len(times)))
        return by_pool

    async def oldest_waiting(self, pool: str, owner: str, now: datetime, limit: int) -> list[Document]:
        self.reads.append((pool, owner, limit))
        mine = [d for d in self._ready(now) if d.get("pool") == pool and d["owner"] == owner]
        ordered = sorted(mine, key=lambda d: (d["queued_at"], d["_id"]))
        return [copy.deepcopy(d) for d in ordered[: max(limit, 0)]]

    async def unstarted(self, sent_before: datetime) -> list[Document]:
        return [
            copy.deepcopy(d)
            for d in self.docs.values()
            if d.get("phase") == DISPATCHED
            and d.get("state") == JobState.QUEUED.value
            and "sent_at" in d
            and d["sent_at"] <= sent_before
        ]

    async def active_by_pool_and_owner(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for doc in self.docs.values():
            if doc.get("phase") == DISPATCHED:
                per_owner = counts.setdefault(doc.get("pool", ""), {})
                per_owner[doc["owner"]] = per_owner.get(doc["owner"], 0) + 1
        return counts

    async def held_of(self, owner: str) -> list[Document]:
        return [
            copy.deepcopy(d) for d in self.docs.values() if d.get("phase") == HELD and d["owner"] == owner
        ]

    def states(self) -> list[tuple[str, int]]:
        """``(state, attempt)`` of every emitted ``JobStateChanged``, in order."""
        return [(e.data["state"], e.data["attempt"]) for e in self.events]


class FakeQuotaVerdicts:
    """Verdicts per owner; ``record`` keeps only newer revisions, like the collection."""

    def __init__(self) -> None:
        self.verdicts: dict[str, tuple[int, bool, str]] = {}
        self.after_read: list[Any] = []
        """Callbacks run after each ``hold_reason`` read (to interleave a release)."""

    async def hold_reason(self, owner: str) -> str | None:
        verdict = self.verdicts.get(owner)
        reason = verdict[2] if verdict is not None and verdict[1] else None
        for callback in self.after_read:
            await callback()
        return reason

    async def record(self, owner: str, revision: int, over: bool, reason: str) -> bool:
        held = self.verdicts.get(owner)
        if held is not None and held[0] >= revision:
            return False
        self.verdicts[owner] = (revision, over, reason)
        return True


class Kicks:
    """Stands in for ``relay.kick``: remembers which documents (and events) were handed over."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.handed: list[Envelope] = []

    def __call__(
        self, doc_id: str, envelopes: Sequence[Envelope] = (), commands: Sequence[tuple[Envelope, str]] = ()
    ) -> None:
        self.ids.append(doc_id)
        self.handed.extend([*envelopes, *(c for c, _ in commands)])


class Wakes:
    """Stands in for the dispatcher's ``wake``: counts the wake-ups."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1

"""The scheduler's own job collection.

Every state change is one guarded ``update_one`` that also appends the events (and
``RunJob`` commands) it causes to the document's outbox, so a crash can never leave a
change without its event or an event without its change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from caesar_common.events import Envelope
from caesar_common.outbox import merge_updates, outbox_fields, outbox_update
from caesar_common.store import Document
from caesar_scheduler.domain.phases import DISPATCHED, EARLY_CANCEL, FINISHED, WAITING

__all__ = [
    "COLLECTION",
    "DISPATCHED",
    "EARLY_CANCEL",
    "FINISHED",
    "INDEXES",
    "WAITING",
    "SchedulerJobs",
]

COLLECTION = "jobs"

INDEXES = {
    COLLECTION: [
        IndexModel([("phase", ASCENDING), ("queued_at", ASCENDING)], name="phase_queued"),
        IndexModel(
            [("phase", ASCENDING), ("pool", ASCENDING), ("owner", ASCENDING)],
            name="phase_pool_owner",
        ),
    ]
}


class SchedulerJobs:
    """Repository of the scheduler's jobs."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id})

    async def insert(self, doc: Document, events: list[Envelope]) -> bool:
        """Insert a new job with its events; False if it already exists (duplicate event)."""
        try:
            await self.collection.insert_one({**doc, **outbox_fields(events)})
        except DuplicateKeyError:
            return False
        return True

    async def insert_early_cancel(self, job_id: str, owner: str) -> bool:
        try:
            await self.collection.insert_one({"_id": job_id, "owner": owner, "phase": EARLY_CANCEL})
        except DuplicateKeyError:
            return False
        return True

    async def transition(
        self,
        job_id: str,
        expect: dict[str, Any],
        changes: dict[str, Any],
        events: Sequence[Envelope] = (),
        commands: Sequence[tuple[Envelope, str]] = (),
    ) -> bool:
        """Apply ``changes`` (plus events) only if the document still matches ``expect``."""
        update = {"$set": changes}
        if events or commands:
            update = merge_updates(update, outbox_update(list(events), commands=list(commands)))
        result = await self.collection.update_one({"_id": job_id, **expect}, update)
        return result.modified_count == 1

    async def waiting(self, now: datetime, limit: int = 5000) -> list[Document]:
        """Jobs ready to dispatch (a retry's backoff shows as a ``queued_at`` in the future)."""
        cursor = (
            self.collection.find(
                {"phase": WAITING, "queued_at": {"$lte": now}},
                {"_id": 1, "owner": 1, "queued_at": 1, "pool": 1},
            )
            .sort("queued_at", ASCENDING)
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def active_by_pool_and_owner(self) -> dict[str, dict[str, int]]:
        """Dispatched, unfinished jobs counted per pool and owner."""
        counts: dict[str, dict[str, int]] = {}
        async for doc in self.collection.find({"phase": DISPATCHED}, {"pool": 1, "owner": 1}):
            pool_counts = counts.setdefault(doc.get("pool", ""), {})
            pool_counts[doc["owner"]] = pool_counts.get(doc["owner"], 0) + 1
        return counts

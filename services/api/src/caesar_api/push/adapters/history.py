"""Reads of the jobs read model that push needs: a job's history, an owner's recent changes.

The history (``history`` entries and the record's ``applied_at``) is written by the
projection in the same guarded update as the state (``adapters/jobs_repo.py``); these
reads only replay it. The owner's changes come from one cursor on the
``owner_applied`` index, oldest first, read in small batches so a long replay never
holds many records in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.store import Document

# What replay and webhooks read of a job record: never the outbox or the announcement.
_HIDDEN = {"outbox": 0, "announcement": 0}
_REPLAY_FIELDS = {"owner": 1, "state": 1, "attempt": 1, "history": 1, "applied_at": 1, "updated_at": 1}


class JobHistory:
    """The jobs collection, read for replays and webhook bodies."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def job(self, job_id: str) -> Document | None:
        """A job's record (whoever owns it: the caller checked it may see it)."""
        return await self.collection.find_one({"_id": job_id}, _HIDDEN)

    async def jobs(self, job_ids: Iterable[str]) -> dict[str, Document]:
        """Several records in one read (the webhook fan-out of a batch)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        return {doc["_id"]: doc async for doc in self.collection.find({"_id": {"$in": ids}}, _HIDDEN)}

    async def applied_since(
        self, owner: str, since: datetime, *, batch_size: int = 100
    ) -> AsyncIterator[Document]:
        """The owner's jobs whose state changed at or after ``since``, by ``applied_at``."""
        cursor = (
            self.collection.find({"owner": owner, "applied_at": {"$gte": since}}, _REPLAY_FIELDS)
            .sort([("applied_at", ASCENDING), ("_id", ASCENDING)])
            .batch_size(batch_size)
        )
        async for doc in cursor:
            yield doc

"""The ``jobs`` collection: the api's read model of jobs, with its outbox.

The api writes a job once at submission (state PENDING, attempt 0, with ``JobSubmitted``
in its outbox) and afterwards only projects ``JobStateChanged`` events onto it and
queues cancel requests. Writes that depend on what was read are guarded by the
position read (``attempt``, ``state``, ``retryable``): a concurrent writer makes the
guard miss and the caller re-reads, never overwrites (no ``find_one_and_update``, which
the MongoDB-wire dev server executes with a scan).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_api.adapters.pagination import Page, after_filter
from caesar_common.events import JobCancelRequested, JobSubmitted
from caesar_common.outbox import OutboxRelay, envelope_for, merge_updates, outbox_fields, outbox_update
from caesar_common.store import Document

JOBS_INDEXES: list[IndexModel] = [
    # GET /jobs: the owner's jobs, newest first, cursor on (submitted_at, _id).
    IndexModel(
        [("owner", ASCENDING), ("submitted_at", DESCENDING), ("_id", DESCENDING)],
        name="owner_newest",
    ),
]


def position_guard(job: Document) -> Document:
    """Filter matching ``job`` only while it is still at the position it was read at."""
    return {
        "_id": job["_id"],
        "attempt": job["attempt"],
        "state": job["state"],
        "retryable": bool(job.get("retryable")),
    }


class JobsRepository:
    """Reads and guarded writes of the jobs read model."""

    def __init__(
        self, collection: AsyncCollection[Document], source: str = "api", relay: OutboxRelay | None = None
    ) -> None:
        self.collection = collection
        self._source = source
        self._relay = relay

    def _publish_soon(self, doc_id: str) -> None:
        """Hand a record's fresh outbox to the relay (the periodic sweep is the fallback)."""
        if self._relay is not None:
            self._relay.kick(self.collection, doc_id)

    async def add(self, record: Document, event: JobSubmitted) -> None:
        """Insert a new job together with its ``JobSubmitted`` event."""
        await self.collection.insert_one({**record, **outbox_fields([envelope_for(event, self._source)])})
        self._publish_soon(record["_id"])

    async def get(self, owner: str, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id, "owner": owner}, {"outbox": 0})

    async def get_any(self, job_id: str) -> Document | None:
        """A job whoever owns it (the projection; events carry the owner to check)."""
        return await self.collection.find_one({"_id": job_id}, {"outbox": 0})

    async def list(self, owner: str, limit: int, after: Document | None) -> Page:
        """One page of the owner's jobs, newest first."""
        query: Document = {"owner": owner}
        if after is not None:
            query.update(after_filter("submitted_at", after))
        cursor = (
            self.collection.find(query, {"outbox": 0})
            .sort([("submitted_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        return Page(docs[:limit], more=len(docs) > limit)

    async def request_cancel(self, job: Document, requested_at: datetime) -> bool:
        """Record a cancel request and queue ``JobCancelRequested`` in one guarded update.

        Returns ``False`` when the job moved on since it was read (re-read and decide).
        """
        event = JobCancelRequested(job_id=job["_id"], owner=job["owner"], requested_at=requested_at)
        update = merge_updates(
            {"$set": {"cancel_requested_at": requested_at, "updated_at": requested_at}},
            outbox_update([envelope_for(event, self._source)]),
        )
        result = await self.collection.update_one(position_guard(job), update)
        if result.matched_count != 1:
            return False
        self._publish_soon(job["_id"])
        return True

    async def move(self, job: Document, fields: dict[str, Any]) -> bool:
        """Apply a projected transition if ``job`` is still where it was read."""
        result = await self.collection.update_one(position_guard(job), {"$set": fields})
        return result.matched_count == 1

"""The ``jobs`` collection: the api's read model of jobs, with its outbox.

The api writes a job once at submission (state PENDING, attempt 0, with ``JobSubmitted``
in its outbox) and afterwards only projects ``JobStateChanged`` events onto it and
queues cancel requests. Writes that depend on what was read are guarded by the
position read (``attempt``, ``state``, ``retryable``): a concurrent writer makes the
guard miss and the caller re-reads, never overwrites (no ``find_one_and_update``, which
the MongoDB-wire dev server executes with a scan).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from caesar_api.adapters.pagination import Page, after_filter
from caesar_api.domain.projection import HISTORY_MAX, ProjectedMove, history_entry
from caesar_common.events import Envelope, JobCancelRequested, JobSubmitted
from caesar_common.group_commit import GroupInserter
from caesar_common.jobstate import HeldBefore
from caesar_common.outbox import OutboxRelay, envelope_for, merge_updates, outbox_fields, outbox_update
from caesar_common.store import BY_ID, Document

JOBS_INDEXES: list[IndexModel] = [
    # Jobs still PENDING, oldest first (the re-announcement of lost submissions).
    IndexModel([("state", ASCENDING), ("submitted_at", ASCENDING)], name="state_submitted"),
    # GET /jobs: the owner's jobs, newest first, cursor on (submitted_at, _id).
    IndexModel(
        [("owner", ASCENDING), ("submitted_at", DESCENDING), ("_id", DESCENDING)],
        name="owner_newest",
    ),
    # Queue position (v2): the jobs of a pool still waiting, oldest first.
    IndexModel(
        [("pool", ASCENDING), ("state", ASCENDING), ("submitted_at", ASCENDING)], name="waiting_in_pool"
    ),
    # Push: the owner's jobs whose state changed since a time (a per-user SSE stream resumes).
    IndexModel([("owner", ASCENDING), ("applied_at", ASCENDING)], name="owner_applied"),
]


# Bookkeeping no reader needs: the outbox, and the payload kept for re-announcing.
_HIDDEN = {"outbox": 0, "announcement": 0}


def with_history(fields: dict[str, Any], entries: Sequence[dict[str, Any]]) -> Document:
    """A projected move's update: its ``$set`` and its applied states ``$push``-ed onto the
    job's ``history``, in the same guarded write, both stamped with the api's time of
    applying (``applied_at``; SSE resumes and webhooks read them, caesar_api.push)."""
    now = datetime.now(UTC)
    applied_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as stored: milliseconds
    return {
        "$set": {**fields, "applied_at": applied_at},
        "$push": {
            "history": {"$each": [{**e, "applied_at": applied_at} for e in entries], "$slice": -HISTORY_MAX}
        },
    }


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
        # Concurrent submissions share one journaled insert (group commit).
        self._inserter = GroupInserter(collection)

    def _publish_soon(self, doc_id: str, envelope: Envelope) -> None:
        """Hand a record's fresh event to the relay (the periodic sweep is the fallback)."""
        if self._relay is not None:
            self._relay.kick(self.collection, doc_id, [envelope])

    async def add(self, record: Document, event: JobSubmitted) -> None:
        """Insert a new job together with its ``JobSubmitted`` event; durable on return.

        The event's payload is kept in the record (``announcement``) so that a
        submission the scheduler never saw can be announced again.
        """
        envelope = envelope_for(event, self._source)
        document = {**record, "announcement": envelope.data, **outbox_fields([envelope])}
        await self._inserter.insert(document)
        self._publish_soon(record["_id"], envelope)

    async def reannounce_pending(self, announced_before: datetime, now: datetime, *, limit: int = 500) -> int:
        """Publish ``JobSubmitted`` again for jobs still PENDING since before the instant.

        Only jobs whose outbox is empty (their announcement did go out) and that were not
        re-announced since then; each write is guarded on the job still being PENDING.
        """
        query = {
            "state": "PENDING",
            "submitted_at": {"$lte": announced_before},
            "outbox_pending": {"$ne": True},
        }
        done = 0
        async for doc in self.collection.find(query, {"announcement": 1, "reannounced_at": 1}).limit(limit):
            if not doc.get("announcement"):
                continue  # recorded before announcements were kept: nothing to re-send
            if doc.get("reannounced_at") is not None and doc["reannounced_at"] > announced_before:
                continue  # announced again recently: give the scheduler its time
            envelope = envelope_for(JobSubmitted.model_validate(doc["announcement"]), self._source)
            update = merge_updates({"$set": {"reannounced_at": now}}, outbox_update([envelope]))
            # Guarded on the value read too: of two api replicas, one re-announces.
            guard = {"_id": doc["_id"], "state": "PENDING", "reannounced_at": doc.get("reannounced_at")}
            result = await self.collection.update_one(guard, update, hint=BY_ID)
            if result.modified_count == 1:
                self._publish_soon(doc["_id"], envelope)
                done += 1
        return done

    async def get(self, owner: str, job_id: str) -> Document | None:
        # By _id alone, then the owner: a filter on owner too is planned through the
        # owner's index and scans all of that owner's jobs on the development database.
        job = await self.collection.find_one({"_id": job_id}, _HIDDEN)
        return job if job is not None and job.get("owner") == owner else None

    async def get_any(self, job_id: str) -> Document | None:
        """A job whoever owns it (the projection; events carry the owner to check)."""
        return await self.collection.find_one({"_id": job_id}, _HIDDEN)

    async def list(self, owner: str, limit: int, after: Document | None) -> Page:
        """One page of the owner's jobs, newest first."""
        query: Document = {"owner": owner}
        if after is not None:
            query.update(after_filter("submitted_at", after))
        cursor = (
            self.collection.find(query, _HIDDEN)
            .sort([("submitted_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        return Page(docs[:limit], more=len(docs) > limit)

    async def find_page(self, query: Document, limit: int, after: Document | None) -> Page:
        """One page of the jobs ``query`` matches (it names the owner), newest first."""
        if after is not None:
            query = {"$and": [query, after_filter("submitted_at", after)]}
        cursor = (
            self.collection.find(query, _HIDDEN)
            .sort([("submitted_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        return Page(docs[:limit], more=len(docs) > limit)

    async def stream_owned(self, owner: str, batch_size: int) -> AsyncIterator[Document]:
        """Every job of the owner, newest first, from one cursor read ``batch_size`` at a time."""
        cursor = (
            self.collection.find({"owner": owner}, _HIDDEN)
            .sort([("submitted_at", DESCENDING), ("_id", DESCENDING)])
            .batch_size(batch_size)
        )
        try:
            async for doc in cursor:
                yield doc
        finally:
            await cursor.close()

    async def count(self, query: Document) -> int:
        return int(await self.collection.count_documents(query))

    async def mark_deleted(self, job: Document, deleted_at: datetime) -> bool:
        """Mark an ended job deleted, guarded by the position read (False: re-read)."""
        guard = {**position_guard(job), "deleted_at": None}
        update = {"$set": {"deleted_at": deleted_at, "updated_at": deleted_at}}
        result = await self.collection.update_one(guard, update, hint=BY_ID)
        return bool(result.matched_count == 1)

    async def request_cancel(self, job: Document, requested_at: datetime) -> bool:
        """Record a cancel request and queue ``JobCancelRequested`` in one guarded update.

        Returns ``False`` when the job moved on since it was read (re-read and decide).
        """
        event = JobCancelRequested(job_id=job["_id"], owner=job["owner"], requested_at=requested_at)
        envelope = envelope_for(event, self._source)
        update = merge_updates(
            {"$set": {"cancel_requested_at": requested_at, "updated_at": requested_at}},
            outbox_update([envelope]),
        )
        result = await self.collection.update_one(position_guard(job), update, hint=BY_ID)
        if result.matched_count != 1:
            return False
        self._publish_soon(job["_id"], envelope)
        return True

    async def move_from(self, job_id: str, owner: str, held: HeldBefore, fields: dict[str, Any]) -> bool:
        """Apply a projected transition if the job's position is one ``held`` matches."""
        for position in held.as_filters():
            result = await self.collection.update_one(
                # deleted_at: a deleted job's record is never moved again (v2 DELETE).
                {"_id": job_id, "owner": owner, **position, "deleted_at": None},
                with_history(
                    fields, [history_entry(fields["state"], fields["attempt"], fields["updated_at"])]
                ),
                hint=BY_ID,
            )
            if result.matched_count == 1:
                return True
        return False

    async def positions(self, job_ids: Iterable[str]) -> dict[str, Document]:
        """Owner and position of each job (those that exist), in one read."""
        ids = sorted(set(job_ids))
        cursor = self.collection.find(
            {"_id": {"$in": ids}}, {"owner": 1, "attempt": 1, "state": 1, "retryable": 1}
        )
        return {doc["_id"]: doc async for doc in cursor}

    async def move_many(self, moves: Sequence[ProjectedMove]) -> bool:
        """Write every planned move in one ``bulk_write``; False if any guard no longer held.

        Each update is guarded by the position its plan read, so a job another writer
        moved meanwhile is left alone (the caller then applies those events one by one).
        """
        operations = []
        for move in moves:
            guard: Document = {
                "_id": move.job_id,
                "owner": move.owner,
                "attempt": move.held.attempt,
                "state": move.held.state.value,
                "retryable": move.held.retryable if move.held_retryable_stored else {"$exists": False},
                "deleted_at": None,  # a deleted job's record is never moved again (v2 DELETE)
            }
            operations.append(UpdateOne(guard, with_history(move.fields, move.history), hint=BY_ID))
        result = await self.collection.bulk_write(operations, ordered=False)
        return bool(result.matched_count == len(operations))

"""The scheduler's own job collection.

Every state change is one guarded ``update_one`` that also appends the events (and
``RunJob`` commands) it causes to the document's outbox, so a crash can never leave a
change without its event or an event without its change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from caesar_common.events import Envelope
from caesar_common.group_commit import GroupInserter
from caesar_common.jobstate import HeldBefore, JobState
from caesar_common.outbox import merge_updates, outbox_fields, outbox_update
from caesar_common.store import BY_ID, Document
from caesar_scheduler.domain.advance import PlannedAdvance
from caesar_scheduler.domain.fairshare import OwnerBacklog
from caesar_scheduler.domain.phases import DISPATCHED, EARLY_CANCEL, FINISHED, HELD, WAITING

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
        # No separate (phase, queued_at) index: every job write rewrites the entries of
        # each index holding ``phase``, and this one's ``phase`` prefix serves the backlog
        # count as well. One owner's oldest ready jobs in a pool, already in (queued_at, _id) order; its
        # prefix also serves the per-pool and per-owner counts. A new name: MongoDB refuses
        # to redefine the keys of an existing index (the older phase_pool_owner is a prefix).
        IndexModel(
            [
                ("phase", ASCENDING),
                ("pool", ASCENDING),
                ("owner", ASCENDING),
                ("queued_at", ASCENDING),
                ("_id", ASCENDING),
            ],
            name="phase_pool_owner_queued",
        ),
        # Dispatched attempts no runner has started, by when their RunJob was last sent.
        IndexModel([("phase", ASCENDING), ("sent_at", ASCENDING)], name="phase_sent"),
    ]
}


class SchedulerJobs:
    """Repository of the scheduler's jobs."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        # Submissions delivered together are admitted in one journaled insert.
        self._inserter = GroupInserter(collection)

    async def get(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id})

    async def get_many(self, job_ids: Iterable[str]) -> dict[str, Document]:
        """The jobs that exist among ``job_ids``, in one read (outboxes left out)."""
        cursor = self.collection.find({"_id": {"$in": sorted(set(job_ids))}}, {"outbox": 0})
        return {doc["_id"]: doc async for doc in cursor}

    async def advance_many(self, moves: Sequence[PlannedAdvance]) -> set[str]:
        """Write every move in one ``bulk_write``; the jobs to track again one by one.

        Each update is guarded by the record as it was read. If any guard no longer held
        (another writer moved the job), the batch does not say which, so every job of it
        is returned: tracking a report again is idempotent.
        """
        operations = [UpdateOne({"_id": m.job_id, **m.guard}, {"$set": m.changes}, hint=BY_ID) for m in moves]
        result = await self.collection.bulk_write(operations, ordered=False)
        return set() if result.matched_count == len(operations) else {m.job_id for m in moves}

    async def waiting_before(self, pool: str, queued_before: datetime, limit: int) -> list[Document]:
        """Up to ``limit`` jobs of ``pool`` still waiting that were queued before the instant."""
        cursor = self.collection.find(
            {"phase": WAITING, "queued_at": {"$lte": queued_before}, "pool": pool}, {"outbox": 0}
        ).limit(limit)
        return [doc async for doc in cursor]

    async def advance(self, job_id: str, held: HeldBefore, changes: dict[str, Any]) -> bool:
        """Apply ``changes`` to an admitted job whose position ``held`` matches."""
        for position in held.as_filters():
            query = {"_id": job_id, "phase": {"$in": [WAITING, DISPATCHED, FINISHED]}, **position}
            result = await self.collection.update_one(query, {"$set": changes}, hint=BY_ID)
            if result.modified_count == 1:
                return True
        return False

    async def insert(self, doc: Document, events: list[Envelope]) -> bool:
        """Insert a new job with its events; False if it already exists (duplicate event)."""
        try:
            await self._inserter.insert({**doc, **outbox_fields(events)})
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
        result = await self.collection.update_one({"_id": job_id, **expect}, update, hint=BY_ID)
        return result.modified_count == 1

    async def waiting_owners(self, now: datetime) -> dict[str, list[OwnerBacklog]]:
        """Per pool, each owner with ready jobs: how many and the oldest ``queued_at``.

        One ``$group`` over the ready waiting jobs, so the dispatcher sees every owner
        however long anyone's backlog is (a retry's backoff shows as a ``queued_at`` in
        the future). Only ``$match`` and ``$group`` with ``$sum``/``$min``: what secantusdb
        implements as MongoDB does.
        """
        pipeline: list[dict[str, Any]] = [
            {"$match": {"phase": WAITING, "queued_at": {"$lte": now}}},
            {
                "$group": {
                    "_id": {"pool": "$pool", "owner": "$owner"},
                    "waiting": {"$sum": 1},
                    "oldest": {"$min": "$queued_at"},
                }
            },
        ]
        by_pool: dict[str, list[OwnerBacklog]] = {}
        async for row in await self.collection.aggregate(pipeline):
            key = row["_id"]
            by_pool.setdefault(key.get("pool") or "", []).append(
                OwnerBacklog(owner=key["owner"], oldest=row["oldest"], waiting=int(row["waiting"]))
            )
        return by_pool

    async def oldest_waiting(self, pool: str, owner: str, now: datetime, limit: int) -> list[Document]:
        """The owner's ``limit`` oldest ready jobs in ``pool`` (index ``phase_pool_owner_queued``).

        Whole documents (but their outbox): the dispatcher builds each ``RunJob`` from
        what this read, without reading each job again.
        """
        if limit <= 0:
            return []
        cursor = (
            self.collection.find(
                {"phase": WAITING, "pool": pool, "owner": owner, "queued_at": {"$lte": now}},
                {"outbox": 0},
            )
            .sort([("queued_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def unstarted(self, sent_before: datetime) -> list[Document]:
        """Dispatched jobs no runner reported STARTED, their RunJob last sent by ``sent_before``.

        Jobs dispatched before ``sent_at`` was recorded have none and are not matched.
        """
        cursor = self.collection.find(
            {"phase": DISPATCHED, "sent_at": {"$lte": sent_before}, "state": JobState.QUEUED.value},
            {"outbox": 0},
        )
        return [doc async for doc in cursor]

    async def active_by_pool_and_owner(self) -> dict[str, dict[str, int]]:
        """Dispatched, unfinished jobs counted per pool and owner."""
        counts: dict[str, dict[str, int]] = {}
        async for doc in self.collection.find({"phase": DISPATCHED}, {"pool": 1, "owner": 1}):
            pool_counts = counts.setdefault(doc.get("pool", ""), {})
            pool_counts[doc["owner"]] = pool_counts.get(doc["owner"], 0) + 1
        return counts

    async def held_of(self, owner: str) -> list[Document]:
        # The (phase, pool, owner, ...) index's phase prefix: held jobs are few.
        return [d async for d in self.collection.find({"phase": HELD, "owner": owner}, {"outbox": 0})]

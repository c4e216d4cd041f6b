"""The ``timelines`` collection: one document per job with its entries and position.

Document: ``{_id: job_id, owner, app, submitted_at, wall_time_s, state, attempt,
retryable, runner_id, pool, queued_at, started_at (current attempt), last_change,
events: [entry, ...]}`` plus the outbox fields when the watchdog has events to publish.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.jobstate import ACTIVE_STATES, JobPosition, JobState
from caesar_common.outbox import merge_updates
from caesar_common.store import BY_ID, Document, guarded_bulk_upserts, guarded_upsert
from caesar_monitor.domain.timeline import ENTRY_ORDER, Entry
from caesar_monitor.service.ports import TimelineMove

TIMELINES = "timelines"
# ``state`` serves the watchdog (STARTED/RUNNING) and the per-state counts.
TIMELINE_INDEXES = [IndexModel([("state", ASCENDING)], name="state")]

_NO_OUTBOX = {"outbox": 0}


def _push_entry(entry: Entry) -> Document:
    return {"$push": {"events": {"$each": [entry], "$sort": ENTRY_ORDER}}}


def position_guard(job_id: str, held: JobPosition | None) -> Document:
    """Filter matching the document only while it still holds ``held``."""
    if held is None:
        return {"_id": job_id, "state": None}
    return {
        "_id": job_id,
        "state": held.state.value,
        "attempt": held.attempt,
        "retryable": held.retryable,
    }


class TimelineRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def append(self, job_id: str, entry: Entry, fields: Mapping[str, Any]) -> bool:
        """Add ``entry`` unless an entry with its event id is there; set ``fields`` with it.

        One guarded update: a duplicate event matches nothing and changes nothing.
        """
        query = {"_id": job_id, "events.event_id": {"$ne": entry["event_id"]}}
        update = merge_updates(_push_entry(entry), {"$set": dict(fields)} if fields else {})
        return await guarded_upsert(self.collection, query, update)

    async def load(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id}, _NO_OUTBOX)

    async def load_many(self, job_ids: Collection[str]) -> dict[str, Document]:
        cursor = self.collection.find({"_id": {"$in": sorted(job_ids)}}, _NO_OUTBOX)
        return {doc["_id"]: doc async for doc in cursor}

    async def move_many(self, moves: Sequence[TimelineMove]) -> set[str]:
        """One unordered bulk of upserts guarded on the position and the entries' absence.

        A guard that no longer holds makes its upsert collide on ``_id``, so the bulk's
        write errors name the timelines that moved meanwhile, with no read afterwards.
        """
        operations = []
        for move in moves:
            query = position_guard(move.job_id, move.held)
            update: Document = {"$set": dict(move.fields)} if move.fields else {}
            if move.entries:
                query["events.event_id"] = {"$nin": [e["event_id"] for e in move.entries]}
                update["$push"] = {"events": {"$each": list(move.entries), "$sort": ENTRY_ORDER}}
            operations.append(UpdateOne(query, update, upsert=True, hint=BY_ID))
        return {moves[i].job_id for i in await guarded_bulk_upserts(self.collection, operations)}

    async def move(
        self,
        job_id: str,
        held: JobPosition | None,
        fields: Mapping[str, Any],
        *,
        entry: Entry | None = None,
        also: Document | None = None,
    ) -> bool:
        """Set the new position if the document still holds ``held``; ``True`` if it did.

        ``entry`` and ``also`` (e.g. an outbox update) are written in the same operation,
        so a state change and the events it causes are never separated; the entry is
        guarded on being absent, so a duplicate event never lands twice. Holding nothing
        (``held`` is ``None``), the document is created if it does not exist.
        """
        update = merge_updates(
            {"$set": dict(fields)} if fields else {}, _push_entry(entry) if entry else {}, also or {}
        )
        query = position_guard(job_id, held)
        if entry is not None:
            query["events.event_id"] = {"$ne": entry["event_id"]}
        if held is None:
            return await guarded_upsert(self.collection, query, update)
        result = await self.collection.update_one(query, update, hint=BY_ID)
        return result.modified_count == 1

    async def executing(self) -> list[Document]:
        """Jobs in STARTED or RUNNING (indexed on ``state``)."""
        states = sorted(s.value for s in ACTIVE_STATES)
        cursor = self.collection.find({"state": {"$in": states}}, {"events": 0, "outbox": 0})
        return [doc async for doc in cursor]

    async def count_by_state(self) -> dict[JobState, int]:
        return {state: await self.collection.count_documents({"state": state.value}) for state in JobState}

    async def oldest_change_by_state(self, states: Collection[JobState]) -> dict[JobState, datetime]:
        """One query per state, on the ``state`` index: non-terminal states hold few jobs."""
        oldest = {}
        for state in states:
            doc = await self.collection.find_one(
                {"state": state.value, "last_change": {"$ne": None}},
                {"last_change": 1},
                sort=[("last_change", ASCENDING)],
            )
            if doc is not None:
                oldest[state] = doc["last_change"]
        return oldest

    async def entries(self, job_id: str) -> Sequence[Entry] | None:
        doc = await self.collection.find_one({"_id": job_id}, {"events": 1})
        if doc is None:
            return None
        events: list[Entry] = doc.get("events") or []
        return events

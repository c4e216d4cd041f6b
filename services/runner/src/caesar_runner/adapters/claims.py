"""The runner's own records: one claim per job attempt, cancel requests, and fences.

A claim is inserted (with its STARTED event in the outbox) *before* the RunJob command
is acked, and its ``_id`` is ``<job_id>:<attempt>``: a redelivered command for an
attempt already claimed hits the unique key and never starts a second process. A fence
(``_id`` the job id) says which attempt holds the job; see
:class:`caesar_runner.domain.claim.Fence`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from caesar_common.events import Envelope
from caesar_common.group_commit import GroupInserter
from caesar_common.jobstate import JobState
from caesar_common.outbox import merge_updates, outbox_fields, outbox_update
from caesar_common.store import BY_ID, Document
from caesar_runner.domain.claim import Fence

CLAIMS = "claims"
CANCELS = "cancels"
FENCES = "fences"

INDEXES = {
    CLAIMS: [
        # Only what the runner queries (its open claims); no ``job_id`` index: nothing
        # looks claims up by job but operators, and every claim write would maintain it.
        IndexModel([("runner_id", ASCENDING), ("state", ASCENDING)], name="runner_state"),
    ],
    CANCELS: [],
    FENCES: [],
}


OPEN_STATES = (JobState.STARTED.value, JobState.RUNNING.value)


class Claims:
    def __init__(
        self,
        claims: AsyncCollection[Document],
        cancels: AsyncCollection[Document],
        fences: AsyncCollection[Document],
    ) -> None:
        self.collection = claims
        self._cancels = cancels
        self._fences = fences
        # Commands delivered together are claimed in one journaled insert.
        self._inserter = GroupInserter(claims)

    async def claim(self, doc: Document, events: Sequence[Envelope]) -> bool:
        try:
            await self._inserter.insert({**doc, **outbox_fields(events)})
        except DuplicateKeyError:
            return False
        return True

    async def update(
        self, cid: str, expect_state: str, changes: dict[str, Any], events: Sequence[Envelope]
    ) -> bool:
        update = merge_updates({"$set": changes}, outbox_update(events))
        result = await self.collection.update_one({"_id": cid, "state": expect_state}, update, hint=BY_ID)
        return result.modified_count == 1

    async def open_claims(self, runner_id: str, pool: str | None = None) -> list[Document]:
        """Claims of ``runner_id`` still STARTED or RUNNING (and resumable: with a command)."""
        query: Document = {"runner_id": runner_id, "state": {"$in": list(OPEN_STATES)}}
        if pool is not None:
            query["pool"] = pool
        return [d async for d in self.collection.find(query) if "command" in d]

    async def unpublished(self, runner_id: str) -> list[tuple[str, int]]:
        """Attempts of this runner whose events wait in a claim's or a fence's outbox."""
        query = {"outbox_pending": True, "runner_id": runner_id}
        claims = self.collection.find(query, {"job_id": 1, "attempt": 1})
        fences = self._fences.find(query, {"holder": 1})
        return [(d["job_id"], int(d["attempt"])) async for d in claims] + [
            (d["_id"], int(d["holder"])) async for d in fences
        ]

    async def take_fence(self, job_id: str, attempt: int) -> Fence:
        """A retry takes the job unless an earlier attempt closed it; returns the fence after.

        First attempts need no fence (nothing earlier can close the job), so the common
        path costs nothing. When the conditional update matches nothing, the upsert's
        insert meets the existing document's ``_id``: the fence is held by a later attempt
        or closed, and is read back to say which.
        """
        if attempt == 1:
            return Fence(holder=1)
        try:
            await self._fences.update_one(
                {"_id": job_id, "holder": {"$lt": attempt}, "closed": False},
                {"$set": {"holder": attempt, "updated_at": datetime.now(UTC)}},
                upsert=True,
            )
        except DuplicateKeyError:
            return await self._read_fence(job_id, attempt)
        return Fence(holder=attempt)

    async def close_fence(
        self, job_id: str, attempt: int, runner_id: str, events: Sequence[Envelope]
    ) -> Fence:
        """A final outcome closes the job unless a later attempt took it; returns the fence after.

        The outcome's events go into the fence's own outbox in the same write: once the
        fence is closed, no retry can start, so the outcome must reach the scheduler even
        if this runner dies before it writes its claim (it would otherwise wait forever
        for a retry that is never started). ``runner_id`` and ``attempt`` let the
        heartbeat list the attempt while its outcome is unpublished.
        """
        fields = {"holder": attempt, "closed": True, "runner_id": runner_id, "updated_at": datetime.now(UTC)}
        update = merge_updates({"$set": fields}, outbox_update(events)) if events else {"$set": fields}
        try:
            await self._fences.update_one({"_id": job_id, "holder": {"$lte": attempt}}, update, upsert=True)
        except DuplicateKeyError:
            return await self._read_fence(job_id, attempt)
        return Fence(holder=attempt, closed=True)

    async def _read_fence(self, job_id: str, attempt: int) -> Fence:
        doc = await self._fences.find_one({"_id": job_id})
        if doc is None:  # only a pruned fence is missing: nothing holds the job against us
            return Fence(holder=attempt)
        return Fence(holder=int(doc["holder"]), closed=bool(doc.get("closed")))

    async def record_cancel(self, job_id: str) -> None:
        await self._cancels.update_one(
            {"_id": job_id}, {"$setOnInsert": {"requested_at": datetime.now(UTC)}}, upsert=True
        )

    async def is_canceled(self, job_id: str) -> bool:
        return await self._cancels.find_one({"_id": job_id}) is not None

    async def canceled_among(self, job_ids: Iterable[str]) -> set[str]:
        ids = list(job_ids)
        if not ids:
            return set()
        return {d["_id"] async for d in self._cancels.find({"_id": {"$in": ids}}, {"_id": 1})}

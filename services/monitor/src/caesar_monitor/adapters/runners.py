"""The ``runners`` collection: the latest heartbeat of every runner.

Document: ``{_id: runner_id, pool, last_seen, sent_at, slots_total, slots_free,
accepting, running: [{job_id, attempt}]}``. ``last_seen`` is the monitor's clock at
consumption, not the runner's ``sent_at``: a runner whose clock is behind must not look
dead, and a heartbeat that waited in the queue only delays a verdict by its wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.events import RunnerHeartbeat
from caesar_common.store import Document, guarded_upsert

RUNNERS = "runners"
# ``last_seen`` serves the "runners alive since" query behind the slot gauges.
RUNNER_INDEXES = [IndexModel([("last_seen", ASCENDING)], name="last_seen")]


class RunnerRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def record(self, heartbeat: RunnerHeartbeat, received_at: datetime) -> bool:
        """Store a heartbeat unless a newer one from the same runner is already stored."""
        query = {"_id": heartbeat.runner_id, "sent_at": {"$lt": heartbeat.sent_at}}
        update = {
            "$set": {
                "pool": heartbeat.pool,
                "sent_at": heartbeat.sent_at,
                "last_seen": received_at,
                "slots_total": heartbeat.slots_total,
                "slots_free": heartbeat.slots_free,
                "accepting": heartbeat.accepting,
                "running": [r.model_dump() for r in heartbeat.running],
            }
        }
        return await guarded_upsert(self.collection, query, update)

    async def last_seen(self, runner_ids: Iterable[str]) -> dict[str, datetime]:
        ids = sorted(set(runner_ids))
        if not ids:
            return {}
        cursor = self.collection.find({"_id": {"$in": ids}}, {"last_seen": 1})
        return {str(doc["_id"]): doc["last_seen"] async for doc in cursor}

    async def slots_by_pool(self, alive_since: datetime) -> dict[str, tuple[int, int]]:
        """``{pool: (total, free)}`` over the runners heard from since ``alive_since``."""
        slots: dict[str, tuple[int, int]] = {}
        cursor = self.collection.find(
            {"last_seen": {"$gte": alive_since}}, {"pool": 1, "slots_total": 1, "slots_free": 1}
        )
        async for doc in cursor:
            total, free = slots.get(doc["pool"], (0, 0))
            slots[doc["pool"]] = (total + int(doc["slots_total"]), free + int(doc["slots_free"]))
        return slots

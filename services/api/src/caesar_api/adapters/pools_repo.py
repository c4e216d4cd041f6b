"""The ``pools`` collection: the latest ``PoolStatus`` the scheduler published, per pool.

Read by the status routes so a job waiting for a pool nobody serves says so. Snapshots
can arrive out of order (redelivery, two schedulers); the newest ``sent_at`` wins.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.events import PoolStatus
from caesar_common.store import Document, guarded_upsert


class PoolsRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def record(self, status: PoolStatus) -> bool:
        """Keep ``status`` unless a newer one is stored; ``True`` if it was kept."""
        fields = status.model_dump(mode="python", exclude={"pool"})
        return await guarded_upsert(
            self.collection, {"_id": status.pool, "sent_at": {"$lt": status.sent_at}}, {"$set": fields}
        )

    async def waiting_reason(self, pool: str) -> str:
        """Why jobs of ``pool`` wait (no live runner), or ``""``."""
        if not pool:
            return ""
        doc = await self.collection.find_one({"_id": pool}, {"reason": 1})
        return str((doc or {}).get("reason") or "")

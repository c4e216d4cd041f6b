"""The ``quotas`` collection: accounting's newest verdict per user.

Document: ``{_id: owner, over, reason, revision}``. A verdict is kept only if its revision
is higher than the stored one (a guarded upsert), so duplicated or reordered
``QuotaChanged`` events always leave the newest verdict.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.store import Document, guarded_upsert

QUOTAS = "quotas"


class QuotaVerdictStore:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def hold_reason(self, owner: str) -> str | None:
        doc = await self.collection.find_one({"_id": owner}, {"over": 1, "reason": 1})
        if doc is None or not doc.get("over"):
            return None
        return str(doc.get("reason") or "over quota")

    async def record(self, owner: str, revision: int, over: bool, reason: str) -> bool:
        return await guarded_upsert(
            self.collection,
            {"_id": owner, "revision": {"$lt": revision}},
            {"$set": {"over": over, "reason": reason, "revision": revision}},
        )

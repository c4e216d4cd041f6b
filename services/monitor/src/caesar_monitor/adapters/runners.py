"""The ``runners`` collection: the latest heartbeat of every runner.

Document: ``{_id: runner_id, pool, last_seen, sent_at, slots_total, slots_free,
accepting, running: [{job_id, attempt}], missing: [{job_id, attempt, since}]}``.
``last_seen`` is the monitor's clock at consumption, not the runner's ``sent_at``: a
runner whose clock is behind must not look dead, and a heartbeat that waited in the
queue only delays a verdict by its wait. ``running`` is what the latest heartbeat
listed; ``missing`` the attempts earlier heartbeats listed and later ones did not, with
the ``sent_at`` (runner's clock) of the first heartbeat that left each out
(:func:`caesar_monitor.domain.liveness.fold_heartbeat`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from caesar_common.events import RunnerHeartbeat
from caesar_common.store import Document, guarded_upsert
from caesar_monitor.domain.liveness import RunnerReport

RUNNERS = "runners"
# ``last_seen`` serves the "runners alive since" query behind the slot gauges.
RUNNER_INDEXES = [IndexModel([("last_seen", ASCENDING)], name="last_seen")]

_REPORT_FIELDS = {"last_seen": 1, "sent_at": 1, "running": 1, "missing": 1}


def report_of(doc: Mapping[str, Any]) -> RunnerReport:
    """A runner's report from its document (one stored before ``missing`` existed too)."""
    return RunnerReport(
        last_seen=doc["last_seen"],
        sent_at=doc["sent_at"],
        running=frozenset((str(r["job_id"]), int(r["attempt"])) for r in doc.get("running") or []),
        missing={(str(m["job_id"]), int(m["attempt"])): m["since"] for m in doc.get("missing") or []},
    )


class RunnerRepository:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def report(self, runner_id: str) -> RunnerReport | None:
        doc = await self.collection.find_one({"_id": runner_id}, _REPORT_FIELDS)
        return report_of(doc) if doc is not None and "sent_at" in doc else None

    async def record(
        self, heartbeat: RunnerHeartbeat, report: RunnerReport, *, replaces: datetime | None
    ) -> bool:
        """Store a heartbeat and the report folded from it, guarded on the one it replaces.

        The guard (the stored ``sent_at`` is still ``replaces``) makes the read-fold-write
        safe with two monitor replicas consuming one runner's heartbeats: the loser reads
        again. ``None`` means no heartbeat was stored: the document is created.
        """
        guard: Document | datetime = {"$exists": False} if replaces is None else replaces
        query = {"_id": heartbeat.runner_id, "sent_at": guard}
        update = {
            "$set": {
                "pool": heartbeat.pool,
                "sent_at": report.sent_at,
                "last_seen": report.last_seen,
                "slots_total": heartbeat.slots_total,
                "slots_free": heartbeat.slots_free,
                "accepting": heartbeat.accepting,
                "running": [{"job_id": j, "attempt": a} for j, a in sorted(report.running)],
                "missing": [
                    {"job_id": j, "attempt": a, "since": since}
                    for (j, a), since in sorted(report.missing.items())
                ],
            }
        }
        return await guarded_upsert(self.collection, query, update)

    async def reports(self, runner_ids: Iterable[str]) -> dict[str, RunnerReport]:
        ids = sorted(set(runner_ids))
        if not ids:
            return {}
        cursor = self.collection.find({"_id": {"$in": ids}, "sent_at": {"$exists": True}}, _REPORT_FIELDS)
        return {str(doc["_id"]): report_of(doc) async for doc in cursor}

    async def forget_silent(self, silent_since: datetime) -> int:
        result = await self.collection.delete_many({"last_seen": {"$lt": silent_since}})
        return result.deleted_count

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

    async def heard_since(self, since: datetime) -> dict[str, tuple[str, datetime]]:
        """``{runner_id: (pool, last_seen)}`` of the runners heard from since ``since``."""
        cursor = self.collection.find({"last_seen": {"$gte": since}}, {"pool": 1, "last_seen": 1})
        return {str(doc["_id"]): (str(doc["pool"]), doc["last_seen"]) async for doc in cursor}

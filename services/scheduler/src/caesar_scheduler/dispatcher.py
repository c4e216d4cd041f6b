"""Sends waiting jobs to runner pools while they have free slots, fairly across users."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from caesar_common.bus import runner_pool_queue
from caesar_common.events import InputFile, RunJob
from caesar_common.logging import get_logger
from caesar_common.outbox import OutboxRelay, envelope_for
from caesar_common.telemetry import context_from_carrier, tracer
from caesar_scheduler.adapters.jobs import DISPATCHED, WAITING, SchedulerJobs
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.fairshare import WaitingJob, pick_jobs

log = get_logger(__name__)
_tracer = tracer(__name__)

DISPATCHES = Counter("caesar_scheduler_dispatches_total", "RunJob commands sent", ["pool"])
WAITING_JOBS = Gauge("caesar_scheduler_waiting_jobs", "Admitted jobs waiting for a runner slot", ["pool"])
FREE_SLOTS = Gauge("caesar_scheduler_free_slots", "Runner slots not taken by dispatched jobs", ["pool"])


class Dispatcher:
    """The dispatch loop: woken by events, and periodically as a safety net."""

    def __init__(
        self,
        jobs: SchedulerJobs,
        relay: OutboxRelay,
        capacity: CapacityTable,
        pools: Sequence[str],
        *,
        interval_s: float = 1.0,
        max_active_per_user: int = 0,
    ) -> None:
        self._jobs = jobs
        self._relay = relay
        self._capacity = capacity
        self._pools = list(pools)
        self._interval_s = interval_s
        self._max_active = max_active_per_user
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
            self._wake.clear()
            try:
                await self.dispatch_once()
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning("dispatch round failed", error=repr(exc))

    async def dispatch_once(self) -> int:
        """One round: for each pool, fill its free slots; return how many jobs were sent."""
        now = datetime.now(UTC)
        waiting = await self._jobs.waiting(now)
        active = await self._jobs.active_by_pool_and_owner()
        sent = 0
        for pool in self._pools:
            candidates = [
                WaitingJob(d["_id"], d["owner"], d["queued_at"]) for d in waiting if d.get("pool") == pool
            ]
            pool_active = active.get(pool, {})
            free = self._capacity.slots(pool, now) - sum(pool_active.values())
            WAITING_JOBS.labels(pool).set(len(candidates))
            FREE_SLOTS.labels(pool).set(max(free, 0))
            for job_id in pick_jobs(candidates, pool_active, free, max_active_per_user=self._max_active):
                if await self._dispatch(job_id, pool):
                    sent += 1
        return sent

    async def _dispatch(self, job_id: str, pool: str) -> bool:
        doc = await self._jobs.get(job_id)
        if doc is None or doc.get("phase") != WAITING:
            return False
        with _tracer.start_as_current_span("dispatch", context=context_from_carrier(doc.get("trace") or {})):
            return await self._send(doc, pool)

    async def _send(self, doc: dict[str, Any], pool: str) -> bool:
        job_id = doc["_id"]
        command = envelope_for(
            RunJob(
                job_id=job_id,
                owner=doc["owner"],
                app=doc["app"],
                attempt=doc["attempt"],
                params=doc["params"],
                input=InputFile.model_validate(doc["input"]),
                wall_time_s=doc["wall_time_s"],
                cores=doc.get("cores", 1),
                memory_mb=doc.get("memory_mb", 512),
                pool=pool,
            ),
            "scheduler",
        )
        changed = await self._jobs.transition(
            job_id,
            {"phase": WAITING, "attempt": doc["attempt"]},
            {
                "phase": DISPATCHED,
                "dispatched_at": datetime.now(UTC),
                "updated_at": datetime.now(UTC),
            },
            commands=[(command, runner_pool_queue(pool))],
        )
        if changed:
            DISPATCHES.labels(pool).inc()
            self._relay.kick(self._jobs.collection, job_id)
            log.info("dispatched", job_id=job_id, pool=pool, attempt=doc["attempt"])
        return changed

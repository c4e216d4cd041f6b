"""Sending waiting jobs to runner pools while they have free slots, fairly across users.

One round reads, per pool, a summary of who waits (owners, their backlog and oldest job)
and the dispatched jobs, reads only the few oldest jobs of the owners that could get a
slot (:func:`~caesar_scheduler.domain.fairshare.fetch_plan`), asks the pure fair-share
rule which of them take the free slots, and moves each picked job to ``dispatched`` in one
guarded update that also puts its ``RunJob`` command in the job's outbox. No window of
"the N oldest jobs" exists, so no backlog, however long, can hide another owner's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from caesar_common.bus import runner_pool_queue
from caesar_common.events import InputFile, RunJob
from caesar_common.logging import get_logger
from caesar_common.outbox import envelope_for
from caesar_common.telemetry import context_from_carrier, tracer
from caesar_scheduler import metrics
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.fairshare import WaitingJob, fetch_plan, pick_jobs
from caesar_scheduler.domain.phases import DISPATCHED, WAITING
from caesar_scheduler.service.events import SOURCE
from caesar_scheduler.service.ports import JobStore, Kick

log = get_logger(__name__)
_tracer = tracer(__name__)


async def dispatch_once(
    jobs: JobStore,
    capacity: CapacityTable,
    kick: Kick,
    pools: Sequence[str],
    *,
    max_active_per_user: int = 0,
    fetch_per_owner: int = 0,
    now: datetime | None = None,
) -> int:
    """One round: for each pool, fill its free slots; return how many jobs were sent.

    ``fetch_per_owner`` (0: no bound) caps how many of one owner's jobs a round reads,
    for pools with many slots and no per-user cap; what it leaves waits a round.
    """
    now = now or datetime.now(UTC)
    owners = await jobs.waiting_owners(now)
    active = await jobs.active_by_pool_and_owner()
    sent = 0
    for pool in pools:
        backlogs = owners.get(pool, [])
        pool_active = active.get(pool, {})
        free = capacity.slots(pool, now) - sum(pool_active.values())
        metrics.WAITING_JOBS.labels(pool).set(sum(b.waiting for b in backlogs))
        metrics.FREE_SLOTS.labels(pool).set(max(free, 0))
        plan = fetch_plan(
            backlogs,
            pool_active,
            free,
            max_active_per_user=max_active_per_user,
            per_owner_limit=fetch_per_owner,
        )
        read = {
            d["_id"]: d for owner, n in plan.items() for d in await jobs.oldest_waiting(pool, owner, now, n)
        }
        candidates = [WaitingJob(d["_id"], d["owner"], d["queued_at"]) for d in read.values()]
        for job_id in pick_jobs(candidates, pool_active, free, max_active_per_user=max_active_per_user):
            if await dispatch(read[job_id], pool, jobs, kick, now=now):
                sent += 1
    return sent


async def dispatch(
    doc: dict[str, Any], pool: str, jobs: JobStore, kick: Kick, *, now: datetime | None = None
) -> bool:
    """Send a waiting job (as read this round) to ``pool``, continuing its submission's trace.

    The move is guarded on the job still waiting at the attempt read, so a job cancelled
    or sent meanwhile is left alone.
    """
    with _tracer.start_as_current_span("dispatch", context=context_from_carrier(doc.get("trace") or {})):
        return await _send(doc, pool, jobs, kick, now or datetime.now(UTC))


def run_job_command(doc: dict[str, Any], pool: str) -> RunJob:
    """The command a runner of ``pool`` executes, from the job document."""
    return RunJob(
        job_id=doc["_id"],
        owner=doc["owner"],
        app=doc["app"],
        attempt=doc["attempt"],
        params=doc["params"],
        input=InputFile.model_validate(doc["input"]),
        wall_time_s=doc["wall_time_s"],
        cores=doc.get("cores", 1),
        memory_mb=doc.get("memory_mb", 512),
        pool=pool,
    )


async def _send(doc: dict[str, Any], pool: str, jobs: JobStore, kick: Kick, now: datetime) -> bool:
    job_id = doc["_id"]
    command = envelope_for(run_job_command(doc, pool), SOURCE)
    changed = await jobs.transition(
        job_id,
        {"phase": WAITING, "attempt": doc["attempt"]},
        {
            "phase": DISPATCHED,
            "dispatched_at": now,
            # When the RunJob was last sent, and how many times again: the start
            # reconciliation (service.reconcile) re-sends it if no runner starts it.
            "sent_at": now,
            "start_resends": 0,
            "updated_at": now,
        },
        commands=[(command, runner_pool_queue(pool))],
    )
    if changed:
        metrics.DISPATCHES.labels(pool).inc()
        kick(job_id, commands=[(command, runner_pool_queue(pool))])
        log.info("dispatched", job_id=job_id, pool=pool, attempt=doc["attempt"])
    return changed

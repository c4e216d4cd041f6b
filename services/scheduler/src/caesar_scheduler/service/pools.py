"""Telling everyone which pools have no live runner, and ending jobs that wait for one too long."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from caesar_common.events import Envelope, PoolStatus
from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_common.outbox import envelope_for
from caesar_scheduler import metrics
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.phases import FINISHED, WAITING
from caesar_scheduler.domain.pool_status import PoolView, pool_views, waiting_reason
from caesar_scheduler.service.events import SOURCE, state_event
from caesar_scheduler.service.ports import JobStore, Kick

log = get_logger(__name__)

Publish = Callable[[Envelope], Awaitable[None]]

ABORT_BATCH = 500


async def watch_pools(
    jobs: JobStore,
    kick: Kick,
    capacity: CapacityTable,
    pools: Sequence[str],
    publish: Publish,
    *,
    started_at: datetime,
    max_wait: timedelta,
    now: datetime,
) -> int:
    """Announce each pool's status; ABORT jobs that waited too long for a runnerless pool.

    Every pass announces every pool, changed or not: a snapshot is tiny, and one
    published before a subscriber's queue existed (the api starting beside the
    scheduler) or lost on the way is replaced one interval later. Returns how many jobs
    were aborted.
    """
    aborted = 0
    for view in pool_views(capacity, pools, now, started_at):
        metrics.watched_pool(view.pool, view.live_runners)
        status = PoolStatus(
            pool=view.pool,
            live_runners=view.live_runners,
            slots_total=view.slots_total,
            runnerless_since=view.runnerless_since,
            max_wait_s=max_wait.total_seconds(),
            reason=waiting_reason(view, max_wait),
            sent_at=now,
        )
        await publish(envelope_for(status, SOURCE))
        cutoff = view.abort_before(now, max_wait)
        if cutoff is not None:
            aborted += await abort_waiting(jobs, kick, view, cutoff, max_wait, now)
    return aborted


async def abort_waiting(
    jobs: JobStore, kick: Kick, view: PoolView, cutoff: datetime, max_wait: timedelta, now: datetime
) -> int:
    """ABORT the pool's jobs queued before ``cutoff`` that still wait (guarded per job)."""
    reason = waiting_reason(view, max_wait).split(";")[0]
    reason = f"{reason}; waited more than {int(max_wait.total_seconds())} s"
    aborted = 0
    for doc in await jobs.waiting_before(view.pool, cutoff, ABORT_BATCH):
        event = state_event(doc, JobState.ABORTED, doc["attempt"], reason)
        changes = {"phase": FINISHED, "state": JobState.ABORTED.value, "reason": reason, "updated_at": now}
        if await jobs.transition(doc["_id"], {"phase": WAITING, "attempt": doc["attempt"]}, changes, [event]):
            kick(doc["_id"], [event])
            aborted += 1
            metrics.ABORTED_WITHOUT_RUNNER.labels(view.pool).inc()
            log.warning("job aborted: no runner for its pool", job_id=doc["_id"], pool=view.pool)
    return aborted

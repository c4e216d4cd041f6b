"""Start reconciliation: re-send a ``RunJob`` that no runner started, then give up on it.

Runs periodically (``bootstrap`` starts it with :func:`caesar_common.periodic.run_every`).
Each dispatched attempt still QUEUED (no STARTED from a runner) whose command was last
sent more than the start timeout ago gets, per :class:`~caesar_scheduler.domain.start.StartPolicy`,
either the same command again through the outbox, or a retryable FAILURE ("never
started") answered at once by the retry policy (attempt n+1 after backoff, or ABORTED).
Every step is one guarded update, so a STARTED that arrives meanwhile wins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from caesar_common.bus import runner_pool_queue
from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_common.outbox import envelope_for
from caesar_common.telemetry import context_from_carrier, tracer
from caesar_scheduler import metrics
from caesar_scheduler.domain.capacity import CapacityTable
from caesar_scheduler.domain.phases import DISPATCHED
from caesar_scheduler.domain.retry import RetryPolicy
from caesar_scheduler.domain.start import NeverStarted, Resend, StartPolicy
from caesar_scheduler.service.dispatch import run_job_command
from caesar_scheduler.service.events import SOURCE, state_event
from caesar_scheduler.service.ports import JobStore, Kick
from caesar_scheduler.service.progress import retry_or_give_up

log = get_logger(__name__)
_tracer = tracer(__name__)


async def reconcile_unstarted(
    jobs: JobStore,
    kick: Kick,
    capacity: CapacityTable,
    start: StartPolicy,
    retry: RetryPolicy,
    *,
    now: datetime | None = None,
) -> int:
    """One pass; returns how many attempts it acted on (re-sent or failed).

    A pool without a live runner is skipped: its commands are not lost but waiting in
    the queue for one, and failing them would burn attempts during an outage. When a
    runner is back, an overdue attempt is re-sent at the next pass (a second copy of a
    command still queued is as harmless as any duplicate).
    """
    now = now or datetime.now(UTC)
    acted = 0
    for doc in await jobs.unstarted(start.sent_before(now)):
        pool = doc.get("pool", "")
        if capacity.slots(pool, now) <= 0:
            continue
        with _tracer.start_as_current_span(
            "reconcile start", context=context_from_carrier(doc.get("trace") or {})
        ):
            if await _reconcile(doc, pool, jobs, kick, start, retry, now):
                acted += 1
    return acted


async def _reconcile(
    doc: dict[str, Any],
    pool: str,
    jobs: JobStore,
    kick: Kick,
    start: StartPolicy,
    retry: RetryPolicy,
    now: datetime,
) -> bool:
    job_id, attempt = doc["_id"], doc["attempt"]
    resends = int(doc.get("start_resends", 0))
    decision = start.decide(resends)
    if isinstance(decision, Resend):
        command = envelope_for(run_job_command(doc, pool), SOURCE)
        expect = {
            "phase": DISPATCHED,
            "state": JobState.QUEUED.value,
            "attempt": attempt,
            "start_resends": resends,
        }
        changed = await jobs.transition(
            job_id,
            expect,
            {"sent_at": now, "start_resends": decision.resends, "updated_at": now},
            commands=[(command, runner_pool_queue(pool))],
        )
        if changed:
            metrics.START_RESENDS.labels(pool).inc()
            kick(job_id, commands=[(command, runner_pool_queue(pool))])
            log.warning(
                "RunJob re-sent: no runner reported STARTED in time",
                job_id=job_id,
                attempt=attempt,
                pool=pool,
                resend=decision.resends,
                last_sent_at=doc.get("sent_at"),
            )
        return changed
    assert isinstance(decision, NeverStarted)
    failed = state_event(doc, JobState.FAILURE, attempt, decision.reason, retryable=True)
    changed = await retry_or_give_up(doc, decision.reason, jobs, kick, retry, failed=[failed], now=now)
    if changed:
        metrics.NEVER_STARTED.labels(pool).inc()
        log.error("attempt never started", job_id=job_id, attempt=attempt, pool=pool, reason=decision.reason)
    return changed

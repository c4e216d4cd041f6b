"""One plain function per message the scheduler consumes, and the table that routes them.

Handlers take the decoded message, its envelope and the dependencies; they call the use
cases in :mod:`caesar_scheduler.service` (which write state and events in one update and
kick the outbox relay) and wake the dispatcher when a slot or a job may have appeared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from caesar_common.events import (
    RUNNER_SOURCE,
    Envelope,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    QuotaChanged,
    RunnerHeartbeat,
)
from caesar_common.message_router import HandlerTable, decode_known, route_by_type
from caesar_scheduler.domain.capacity import CapacityTable, RunnerSeen
from caesar_scheduler.domain.retry import RetryPolicy
from caesar_scheduler.domain.routing import PoolRule
from caesar_scheduler.domain.start import StartPolicy
from caesar_scheduler.service.admission import admit, cancel_waiting
from caesar_scheduler.service.ports import JobStore, Kick, QuotaVerdicts
from caesar_scheduler.service.progress import track_state, track_states_together
from caesar_scheduler.service.quotas import on_quota_changed


@dataclass
class SchedulerDeps:
    """What the handlers and the dispatch loop need; chosen once, in ``bootstrap``."""

    jobs: JobStore
    kick: Kick
    """Ask the outbox relay to publish a job's pending events now."""
    capacity: CapacityTable
    pools: Sequence[str]
    wake_dispatcher: Callable[[], None]
    rules: Sequence[PoolRule] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_active_per_user: int = 0
    fetch_per_owner: int = 0
    """Bound on one owner's jobs read per dispatch round (0: none)."""
    start: StartPolicy = field(default_factory=StartPolicy)
    quotas: QuotaVerdicts | None = None
    """Accounting's verdicts: new jobs of a user over quota are held (None: never)."""


async def on_job_submitted(msg: JobSubmitted, envelope: Envelope, deps: SchedulerDeps) -> None:
    """Admit the job (QUEUED or ABORTED); a newly waiting job may fill a free slot."""
    if await admit(msg, deps.jobs, deps.kick, pools=deps.pools, rules=deps.rules, quotas=deps.quotas):
        deps.wake_dispatcher()


async def on_cancel_requested(msg: JobCancelRequested, envelope: Envelope, deps: SchedulerDeps) -> None:
    await cancel_waiting(msg, deps.jobs, deps.kick)


async def on_state_changed(msg: JobStateChanged, envelope: Envelope, deps: SchedulerDeps) -> None:
    """Track runner-reported states; a terminal state (or a retry) frees the job's slot."""
    from_runner = envelope.source == RUNNER_SOURCE
    if await track_state(msg, deps.jobs, deps.kick, deps.retry, from_runner=from_runner):
        deps.wake_dispatcher()


async def on_quota(msg: QuotaChanged, envelope: Envelope, deps: SchedulerDeps) -> None:
    """A user's quota verdict changed: back under quota releases their held jobs."""
    if deps.quotas is not None and await on_quota_changed(msg, deps.quotas, deps.jobs, deps.kick):
        deps.wake_dispatcher()


async def on_heartbeat(msg: RunnerHeartbeat, envelope: Envelope, deps: SchedulerDeps) -> None:
    """Capacity is learnt from heartbeats alone (kept in memory: the next beat restores it)."""
    deps.capacity.observe(RunnerSeen(msg.runner_id, msg.pool, msg.slots_total, msg.accepting, msg.sent_at))
    if msg.slots_free > 0:
        deps.wake_dispatcher()


HANDLERS: HandlerTable[SchedulerDeps] = {
    JobSubmitted: on_job_submitted,
    JobCancelRequested: on_cancel_requested,
    JobStateChanged: on_state_changed,
    RunnerHeartbeat: on_heartbeat,
    QuotaChanged: on_quota,
}


async def on_batch(envelopes: Sequence[Envelope], deps: SchedulerDeps) -> None:
    """A batch of deliveries: submissions admitted together (their inserts share one
    group commit), runner reports tracked with one read and one write, the rest one by one.

    Reordering across kinds within a batch is safe: each handler already accepts its
    messages in any order (a cancel may overtake its submission, reports are ranked).
    """
    route = route_by_type(HANDLERS, deps)
    submissions: list[JobSubmitted] = []
    reports: list[tuple[JobStateChanged, bool]] = []
    for envelope in envelopes:
        message = decode_known(envelope)
        if isinstance(message, JobSubmitted):
            submissions.append(message)
        elif isinstance(message, JobStateChanged):
            reports.append((message, envelope.source == RUNNER_SOURCE))
        else:
            await route(envelope)
    if submissions:
        admitted = await asyncio.gather(
            *(
                admit(m, deps.jobs, deps.kick, pools=deps.pools, rules=deps.rules, quotas=deps.quotas)
                for m in submissions
            )
        )
        if any(admitted):
            deps.wake_dispatcher()
    if reports and await track_states_together(reports, deps.jobs, deps.kick, deps.retry):
        deps.wake_dispatcher()

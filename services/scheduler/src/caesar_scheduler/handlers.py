"""One plain function per message the scheduler consumes.

Handlers take the message and their dependencies; they write through the repository
(state + outbox in one update), then kick the relay and wake the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from caesar_common.apps import get_app
from caesar_common.events import (
    Envelope,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    RunnerHeartbeat,
    decode,
)
from caesar_common.jobstate import JobPosition, JobState, is_terminal, supersedes
from caesar_common.logging import get_logger
from caesar_common.outbox import OutboxRelay, envelope_for
from caesar_common.telemetry import current_trace_carrier
from caesar_scheduler.adapters.jobs import (
    DISPATCHED,
    EARLY_CANCEL,
    FINISHED,
    WAITING,
    SchedulerJobs,
)
from caesar_scheduler.domain.capacity import CapacityTable, RunnerSeen
from caesar_scheduler.domain.routing import NoPoolError, choose_pool

log = get_logger(__name__)
SOURCE = "scheduler"


@dataclass
class SchedulerDeps:
    jobs: SchedulerJobs
    relay: OutboxRelay
    capacity: CapacityTable
    pools: Sequence[str]
    wake_dispatcher: Callable[[], None]
    max_attempts: int = 3
    retry_backoff_s: float = 5.0
    slurm_min_image_bytes: int = 0
    slurm_apps: Sequence[str] = ()


def state_event(doc: dict[str, Any], state: JobState, attempt: int, reason: str = "") -> Envelope:
    return envelope_for(
        JobStateChanged(
            job_id=doc["_id"],
            owner=doc["owner"],
            app=doc["app"],
            attempt=attempt,
            state=state,
            reason=reason,
            changed_at=datetime.now(UTC),
            pool=doc.get("pool", ""),
        ),
        SOURCE,
    )


async def on_job_submitted(msg: JobSubmitted, deps: SchedulerDeps) -> None:
    """Admit a job: QUEUED on a pool that can run it, or ABORTED with the reason."""
    now = datetime.now(UTC)
    doc: dict[str, Any] = {
        "_id": msg.job_id,
        "owner": msg.owner,
        "app": msg.app,
        "params": msg.params,
        "input": msg.input.model_dump(),
        "wall_time_s": msg.wall_time_s,
        "cores": msg.cores,
        "memory_mb": msg.memory_mb,
        "submitted_at": msg.submitted_at,
        "queued_at": now,
        "updated_at": now,
        "attempt": 1,
        # The submission's trace context, so the later dispatch continues the same trace.
        "trace": current_trace_carrier(),
    }
    app = get_app(msg.app)
    try:
        if app is None:
            raise NoPoolError(f"unknown app {msg.app}")
        doc["pool"] = choose_pool(
            msg.app,
            app.executors,
            deps.pools,
            image_bytes=msg.input.size_bytes,
            slurm_min_image_bytes=deps.slurm_min_image_bytes,
            slurm_apps=deps.slurm_apps,
        )
        doc.update(phase=WAITING, state=JobState.QUEUED.value)
        event = state_event(doc, JobState.QUEUED, 1)
    except NoPoolError as exc:
        doc.update(phase=FINISHED, state=JobState.ABORTED.value, reason=str(exc), pool="")
        event = state_event(doc, JobState.ABORTED, 1, str(exc))

    existing = await deps.jobs.get(msg.job_id)
    if existing is not None and existing.get("phase") == EARLY_CANCEL:
        doc.update(phase=FINISHED, state=JobState.CANCELED.value, reason="canceled by the user")
        event = state_event(doc, JobState.CANCELED, 1, "canceled by the user")
        del doc["_id"]
        if await deps.jobs.transition(msg.job_id, {"phase": EARLY_CANCEL}, doc, [event]):
            deps.relay.kick(deps.jobs.collection, msg.job_id)
        return
    if await deps.jobs.insert(doc, [event]):
        deps.relay.kick(deps.jobs.collection, msg.job_id)
        deps.wake_dispatcher()
    else:
        log.info("duplicate job submission ignored", job_id=msg.job_id)


async def on_cancel_requested(msg: JobCancelRequested, deps: SchedulerDeps) -> None:
    """Cancel a job that has not been sent to a runner; runners handle the rest."""
    doc = await deps.jobs.get(msg.job_id)
    if doc is None:
        await deps.jobs.insert_early_cancel(msg.job_id, msg.owner)
        return
    if doc.get("phase") != WAITING:
        return  # dispatched: the runner cancels it; finished: nothing to do
    event = state_event(doc, JobState.CANCELED, doc["attempt"], "canceled by the user")
    changed = await deps.jobs.transition(
        msg.job_id,
        {"phase": WAITING},
        {"phase": FINISHED, "state": JobState.CANCELED.value, "updated_at": datetime.now(UTC)},
        [event],
    )
    if changed:
        deps.relay.kick(deps.jobs.collection, msg.job_id)


async def on_state_changed(msg: JobStateChanged, deps: SchedulerDeps) -> None:
    """Track runner-reported states; a terminal state frees the job's slot."""
    if msg.state not in (JobState.STARTED, JobState.RUNNING) and not is_terminal(msg.state):
        return  # QUEUED/HELD/... are our own events coming back
    doc = await deps.jobs.get(msg.job_id)
    if doc is None or doc.get("phase") in (None, EARLY_CANCEL):
        return
    held = JobPosition(doc["attempt"], JobState(doc["state"]), doc.get("retryable", False))
    if not supersedes(msg.position, held):
        return
    if is_terminal(msg.state) and msg.retryable:
        await _retry_or_give_up(doc, msg, deps)
        return
    changes: dict[str, Any] = {
        "state": msg.state.value,
        "retryable": msg.retryable,
        "updated_at": datetime.now(UTC),
    }
    if is_terminal(msg.state):
        changes["phase"] = FINISHED
        changes["reason"] = msg.reason
    expect = {"attempt": doc["attempt"], "state": doc["state"], "phase": doc["phase"]}
    if await deps.jobs.transition(msg.job_id, expect, changes) and is_terminal(msg.state):
        deps.wake_dispatcher()


async def _retry_or_give_up(doc: dict[str, Any], msg: JobStateChanged, deps: SchedulerDeps) -> None:
    """An infrastructure failure (runner lost): a new attempt with backoff, or ABORTED.

    An app's own non-zero exit is never retried: only events flagged ``retryable`` get
    here. The decision and its event are one guarded update, so a duplicate of the
    failure (or a second scheduler) cannot open two new attempts.
    """
    attempt = doc["attempt"]
    now = datetime.now(UTC)
    expect = {"attempt": attempt, "phase": doc["phase"], "state": doc["state"]}
    if attempt < deps.max_attempts:
        delay = timedelta(seconds=deps.retry_backoff_s * 2 ** (attempt - 1))
        reason = f"attempt {attempt} failed ({msg.reason}); retrying"
        event = state_event(doc, JobState.QUEUED, attempt + 1, reason)
        changes: dict[str, Any] = {
            "phase": WAITING,
            "attempt": attempt + 1,
            "state": JobState.QUEUED.value,
            "retryable": False,
            "reason": reason,
            "queued_at": now + delay,
            "updated_at": now,
        }
        log.warning("retrying job", job_id=doc["_id"], attempt=attempt + 1, reason=msg.reason)
    else:
        reason = f"gave up after {attempt} attempts: {msg.reason}"
        event = state_event(doc, JobState.ABORTED, attempt, reason)
        changes = {"phase": FINISHED, "state": JobState.ABORTED.value, "reason": reason, "updated_at": now}
        log.error("job aborted", job_id=doc["_id"], reason=reason)
    if await deps.jobs.transition(doc["_id"], expect, changes, [event]):
        deps.relay.kick(deps.jobs.collection, doc["_id"])
        deps.wake_dispatcher()


async def on_heartbeat(msg: RunnerHeartbeat, deps: SchedulerDeps) -> None:
    deps.capacity.observe(RunnerSeen(msg.runner_id, msg.pool, msg.slots_total, msg.accepting, msg.sent_at))
    if msg.slots_free > 0:
        deps.wake_dispatcher()


async def handle(envelope: Envelope, deps: SchedulerDeps) -> None:
    """Route an envelope to its handler; messages we do not handle are acked and dropped."""
    try:
        message = decode(envelope)
    except KeyError:
        log.info("event type not handled here", type=envelope.type)
        return
    if isinstance(message, JobSubmitted):
        await on_job_submitted(message, deps)
    elif isinstance(message, JobCancelRequested):
        await on_cancel_requested(message, deps)
    elif isinstance(message, JobStateChanged):
        await on_state_changed(message, deps)
    elif isinstance(message, RunnerHeartbeat):
        await on_heartbeat(message, deps)


__all__ = ["DISPATCHED", "SchedulerDeps", "handle"]

"""Following what runners report: a job's state moves forward, a lost attempt is retried."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from caesar_common.events import Envelope, JobStateChanged
from caesar_common.jobstate import HeldBefore, JobPosition, JobState, is_terminal, supersedes
from caesar_common.logging import get_logger
from caesar_scheduler import metrics
from caesar_scheduler.domain.admission import reported_by_runner
from caesar_scheduler.domain.advance import advance_changes, plan_advances
from caesar_scheduler.domain.phases import DISPATCHED, EARLY_CANCEL, FINISHED, WAITING
from caesar_scheduler.domain.retry import GiveUp, Retry, RetryPolicy, withdraws_retry
from caesar_scheduler.service.events import state_event
from caesar_scheduler.service.ports import JobStore, Kick

log = get_logger(__name__)


async def track_state(
    msg: JobStateChanged, jobs: JobStore, kick: Kick, policy: RetryPolicy, *, from_runner: bool = True
) -> bool:
    """Record a runner-reported state; returns whether a runner slot was freed.

    Stale and repeated reports change nothing (the held position supersedes them); a
    retryable terminal state goes through the retry policy instead; a runner's final
    outcome of an attempt we already retried may withdraw the retry.
    """
    if not reported_by_runner(msg.state):
        return False  # QUEUED/HELD/... are our own events coming back
    if is_terminal(msg.state) and msg.retryable:
        doc = await jobs.get(msg.job_id)
        if doc is None or doc.get("phase") in (None, EARLY_CANCEL):
            return False
        held = JobPosition(doc["attempt"], JobState(doc["state"]), doc.get("retryable", False))
        if not supersedes(msg.position, held):
            return False
        return await retry_or_give_up(doc, msg.reason, jobs, kick, policy)
    changes = advance_changes(msg, datetime.now(UTC))
    # One guarded write, no read: runners report the attempt the scheduler opened, so
    # only a held position of the same attempt can be superseded (a stale attempt's
    # report matches nothing).
    moved = await jobs.advance(msg.job_id, HeldBefore(msg.position, same_attempt=True), changes)
    if moved:
        return is_terminal(msg.state)
    if from_runner and is_terminal(msg.state):
        return await withdraw_retry(msg, jobs, kick)
    return False


async def withdraw_retry(msg: JobStateChanged, jobs: JobStore, kick: Kick) -> bool:
    """Close the job with an earlier attempt's final outcome if its retry has not started.

    Only read when a final report matched nothing (stale or repeated), which is rare. The
    closing event is the retry's own attempt, so every projection ranks it above all
    else; it carries the outcome's outputs and ``result_attempt``, where they live. CPU
    figures stay on the attempt that used them. Returns whether a slot was freed.
    """
    doc = await jobs.get(msg.job_id)
    if doc is None:
        return False
    held = JobPosition(doc["attempt"], JobState(doc["state"]), doc.get("retryable", False))
    if not withdraws_retry(held, doc.get("phase", ""), msg.position):
        return False
    reason = (
        f"attempt {msg.attempt} finished after all ({msg.state.value}); "
        f"its retry, attempt {held.attempt}, was withdrawn"
    )
    event = state_event(
        doc,
        msg.state,
        held.attempt,
        reason,
        result_attempt=msg.attempt,
        exit_code=msg.exit_code,
        outputs=msg.outputs,
        runner_id=msg.runner_id,
    )
    changes = {
        "phase": FINISHED,
        "state": msg.state.value,
        "retryable": False,
        "reason": reason,
        "result_attempt": msg.attempt,
        "updated_at": datetime.now(UTC),
    }
    expect = {"attempt": held.attempt, "phase": doc["phase"], "state": doc["state"]}
    if not await jobs.transition(doc["_id"], expect, changes, [event]):
        return False
    kick(doc["_id"], [event])
    log.warning("retry withdrawn", job_id=doc["_id"], attempt=held.attempt, closed_by=msg.attempt)
    return bool(doc["phase"] == DISPATCHED)


async def retry_or_give_up(
    doc: dict[str, Any],
    failure: str,
    jobs: JobStore,
    kick: Kick,
    policy: RetryPolicy,
    *,
    failed: Sequence[Envelope] = (),
    now: datetime | None = None,
) -> bool:
    """An infrastructure failure (runner lost, never started): a new attempt with backoff, or ABORTED.

    The decision and its event are one guarded update, so a duplicate of the failure
    (or a second scheduler) cannot open two new attempts. ``failed`` are events that
    announce the failure itself, when the scheduler is the one that saw it; they go in
    the same update, before the decision's. Returns whether it applied.
    """
    attempt = doc["attempt"]
    now = now or datetime.now(UTC)
    expect = {"attempt": attempt, "phase": doc["phase"], "state": doc["state"]}
    decision = policy.decide(attempt, failure, now)
    changes: dict[str, Any]
    if isinstance(decision, Retry):
        event = state_event(doc, JobState.QUEUED, decision.attempt, decision.reason)
        changes = {
            "phase": WAITING,
            "attempt": decision.attempt,
            "state": JobState.QUEUED.value,
            "retryable": False,
            "reason": decision.reason,
            "queued_at": decision.not_before,
            "updated_at": now,
        }
        log.warning("retrying job", job_id=doc["_id"], attempt=decision.attempt, reason=failure)
    else:
        assert isinstance(decision, GiveUp)
        event = state_event(doc, JobState.ABORTED, attempt, decision.reason)
        changes = {
            "phase": FINISHED,
            "state": JobState.ABORTED.value,
            "reason": decision.reason,
            "updated_at": now,
        }
        log.error("job aborted", job_id=doc["_id"], reason=decision.reason)
    if await jobs.transition(doc["_id"], expect, changes, [*failed, event]):
        kick(doc["_id"], [*failed, event])
        if isinstance(decision, Retry):
            metrics.RETRIES.labels(str(doc.get("pool") or "")).inc()
        return True
    return False


async def track_states_together(
    reports: Sequence[tuple[JobStateChanged, bool]], jobs: JobStore, kick: Kick, policy: RetryPolicy
) -> bool:
    """A batch of ``(report, from_runner)`` with one read and one write for the plain moves.

    Returns whether a slot was freed. Jobs with a report that needs more than a move (see
    :mod:`caesar_scheduler.domain.advance`), or whose write lost to another writer, are
    tracked one report at a time, in order.
    """
    messages = [msg for msg, _ in reports]
    plan = plan_advances(await jobs.get_many({m.job_id for m in messages}), messages, datetime.now(UTC))
    lost = await jobs.advance_many(plan.moves) if plan.moves else set()
    freed = any(m.frees_slot for m in plan.moves if m.job_id not in lost)
    again = {m.job_id for m in plan.one_by_one} | lost
    for msg, from_runner in reports:
        if msg.job_id in again:
            freed = await track_state(msg, jobs, kick, policy, from_runner=from_runner) or freed
    return freed

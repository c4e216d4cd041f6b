"""Admitting a submitted job (held if its owner is over quota) and cancelling one that
has not been dispatched."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from caesar_common.apps import get_app
from caesar_common.events import JobCancelRequested, JobSubmitted
from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_common.telemetry import current_trace_carrier
from caesar_scheduler.domain.admission import job_document
from caesar_scheduler.domain.phases import EARLY_CANCEL, FINISHED, HELD, WAITING
from caesar_scheduler.domain.routing import NoPoolError, PoolRule, choose_pool
from caesar_scheduler.service.events import state_event
from caesar_scheduler.service.ports import JobStore, Kick, QuotaVerdicts
from caesar_scheduler.service.quotas import release_one

log = get_logger(__name__)

CANCELED_BY_USER = "canceled by the user"
SCHEDULER_DECISIONS = frozenset({JobState.QUEUED, JobState.HELD, JobState.ABORTED, JobState.CANCELED})


async def admit(
    msg: JobSubmitted,
    jobs: JobStore,
    kick: Kick,
    *,
    pools: Sequence[str],
    rules: Sequence[PoolRule] = (),
    quotas: QuotaVerdicts | None = None,
) -> bool:
    """QUEUED on a pool that can run the job (HELD if its owner is over quota), or
    ABORTED with the reason.

    A cancel that overtook the submission (``EARLY_CANCEL`` placeholder) turns the
    admission into CANCELED. Returns whether a new job waits for dispatch (the caller
    wakes the dispatcher); a duplicate submission changes nothing but announces the
    decision again (:func:`announce_decision_again`).
    """
    doc = job_document(msg, datetime.now(UTC), current_trace_carrier())
    app = get_app(msg.app)
    hold = await quotas.hold_reason(msg.owner) if quotas is not None else None
    try:
        if app is None:
            raise NoPoolError(f"unknown app {msg.app}")
        doc["pool"] = choose_pool(
            msg.app, app.executors, pools, image_bytes=msg.input.size_bytes, rules=rules
        )
        if hold is None:
            doc.update(phase=WAITING, state=JobState.QUEUED.value)
            event = state_event(doc, JobState.QUEUED, 1)
        else:
            doc.update(phase=HELD, state=JobState.HELD.value, reason=hold)
            event = state_event(doc, JobState.HELD, 1, hold)
    except NoPoolError as exc:
        doc.update(phase=FINISHED, state=JobState.ABORTED.value, reason=str(exc), pool="")
        event = state_event(doc, JobState.ABORTED, 1, str(exc))

    if await jobs.insert(doc, [event]):
        kick(msg.job_id, [event])
        if hold is None:
            return True
        # Released while we were holding it? Then nobody else will release it.
        if quotas is not None and await quotas.hold_reason(msg.owner) is None:
            return await release_one(doc, jobs, kick) > 0
        return False
    # Not new (read only now, so a first submission costs one write and no read).
    existing = await jobs.get(msg.job_id)
    if existing is not None and existing.get("phase") == EARLY_CANCEL:
        doc.update(phase=FINISHED, state=JobState.CANCELED.value, reason=CANCELED_BY_USER)
        event = state_event(doc, JobState.CANCELED, 1, CANCELED_BY_USER)
        del doc["_id"]
        if await jobs.transition(msg.job_id, {"phase": EARLY_CANCEL}, doc, [event]):
            kick(msg.job_id, [event])
        return False
    if existing is not None:
        await announce_decision_again(existing, jobs, kick)
    return False


async def announce_decision_again(doc: dict[str, Any], jobs: JobStore, kick: Kick) -> bool:
    """A submission seen before: publish again the state the scheduler decided for it.

    The api re-announces a job it still shows PENDING; if the scheduler's answer was lost
    on the way, this heals the api's view. Only the scheduler's own decisions are sent
    again (QUEUED, ABORTED, CANCELED): a runner's reports carry measurements only the
    runner has, and come from the runner.
    """
    state = JobState(doc["state"])
    if state not in SCHEDULER_DECISIONS:
        log.info("duplicate job submission ignored", job_id=doc["_id"], state=state.value)
        return False
    event = state_event(doc, state, doc["attempt"], doc.get("reason") or "")
    expect = {"attempt": doc["attempt"], "state": doc["state"], "phase": doc["phase"]}
    if await jobs.transition(doc["_id"], expect, {"announced_again_at": datetime.now(UTC)}, [event]):
        kick(doc["_id"], [event])
        log.info("duplicate job submission: decision announced again", job_id=doc["_id"], state=state.value)
        return True
    return False


async def cancel_waiting(msg: JobCancelRequested, jobs: JobStore, kick: Kick) -> None:
    """Cancel a job that has not been sent to a runner; runners handle the rest.

    A cancel for a job not seen yet leaves a placeholder that the submission finds.
    """
    doc = await jobs.get(msg.job_id)
    if doc is None:
        await jobs.insert_early_cancel(msg.job_id, msg.owner)
        return
    if doc.get("phase") not in (WAITING, HELD):
        return  # dispatched: the runner cancels it; finished: nothing to do
    event = state_event(doc, JobState.CANCELED, doc["attempt"], CANCELED_BY_USER)
    changed = await jobs.transition(
        msg.job_id,
        {"phase": doc["phase"]},
        {"phase": FINISHED, "state": JobState.CANCELED.value, "updated_at": datetime.now(UTC)},
        [event],
    )
    if changed:
        kick(msg.job_id, [event])

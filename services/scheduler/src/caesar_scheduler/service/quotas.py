"""Holding a user's new jobs while accounting says they are over quota, and releasing them.

Accounting judges usage and announces each change of a user's verdict (``QuotaChanged``,
with a revision). A job submitted while its owner is over quota is admitted ``HELD`` (never
dispatched, cancellable); when the owner falls back under quota, every held job becomes
``QUEUED`` in submission order. Jobs already queued or running are never held.

Admission and release may run at the same time (another message of the same batch,
another replica): admission re-reads the verdict after writing ``HELD`` and releases the
job itself if the owner is under quota by then, so a job can never stay held after its
release was announced, whichever runs first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from caesar_common.events import QuotaChanged
from caesar_common.jobstate import JobState
from caesar_common.logging import get_logger
from caesar_scheduler.domain.phases import HELD, WAITING
from caesar_scheduler.service.events import state_event
from caesar_scheduler.service.ports import JobStore, Kick, QuotaVerdicts

log = get_logger(__name__)


async def on_quota_changed(msg: QuotaChanged, verdicts: QuotaVerdicts, jobs: JobStore, kick: Kick) -> bool:
    """Keep the newest verdict; on "under quota", release the owner's held jobs.

    Returns whether any job became ready to dispatch.
    """
    if not await verdicts.record(msg.owner, msg.revision, msg.over, msg.reason):
        return False  # an older verdict, or one we have
    log.info("quota verdict", owner=msg.owner, over=msg.over, reason=msg.reason, revision=msg.revision)
    if msg.over:
        return False
    return await release_held(msg.owner, jobs, kick) > 0


async def release_held(owner: str, jobs: JobStore, kick: Kick) -> int:
    """Queue every held job of ``owner`` (oldest first); how many were released."""
    held = sorted(await jobs.held_of(owner), key=lambda d: (d.get("submitted_at") or datetime.min, d["_id"]))
    released = 0
    for doc in held:
        released += await release_one(doc, jobs, kick)
    return released


async def release_one(doc: dict[str, Any], jobs: JobStore, kick: Kick) -> int:
    now = datetime.now(UTC)
    event = state_event(doc, JobState.QUEUED, doc["attempt"])
    changes = {
        "phase": WAITING,
        "state": JobState.QUEUED.value,
        "reason": "",
        "queued_at": now,
        "updated_at": now,
    }
    if await jobs.transition(doc["_id"], {"phase": HELD}, changes, [event]):
        kick(doc["_id"], [event])
        return 1
    return 0  # cancelled, or released by someone else meanwhile

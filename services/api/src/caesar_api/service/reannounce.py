"""Re-announcing submissions the scheduler never answered (reconciliation of PENDING jobs).

A ``JobSubmitted`` can be published and still never reach a decision: dead-lettered at
the scheduler after a long database outage, or its QUEUED answer dead-lettered on the
way back. The job would stay PENDING forever. Publishing the submission again is safe:
the scheduler admits a job it does not know, and for one it knows re-publishes the state
it decided.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from caesar_api.service.ports import JobStore
from caesar_common.logging import get_logger

log = get_logger(__name__)


async def reannounce_pending(jobs: JobStore, now: datetime, after: timedelta) -> int:
    """Re-publish the submissions of jobs still PENDING ``after`` their (last) announcement."""
    count = await jobs.reannounce_pending(now - after, now)
    if count:
        log.warning(
            "submissions announced again: jobs still PENDING", count=count, after_s=after.total_seconds()
        )
    return count

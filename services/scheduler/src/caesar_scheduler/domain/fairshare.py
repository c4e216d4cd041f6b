"""Fair-share ordering of waiting jobs.

A heavy user's thousand jobs must not starve a light user's one: each free slot goes to
the user with the fewest jobs already dispatched (counting the picks made so far),
and within a user to the oldest job. Users at their cap are skipped.

The dispatcher never reads the whole backlog: a fixed window of the oldest waiting jobs
can be filled entirely by one user at their cap, and then nobody is dispatched. Instead
it reads a summary per owner (:class:`OwnerBacklog`), asks :func:`fetch_plan` how many of
each owner's oldest jobs could possibly be picked this round, reads just those, and
gives them to :func:`pick_jobs`. The plan is chosen so the picks are the same as over
the whole backlog (given no ``per_owner_limit``).
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WaitingJob:
    job_id: str
    owner: str
    queued_at: datetime


@dataclass(frozen=True)
class OwnerBacklog:
    """One owner's jobs ready to dispatch in one pool, summarised by the database."""

    owner: str
    oldest: datetime
    """``queued_at`` of the owner's oldest ready job: the tie-break between equal owners."""
    waiting: int


def _at_cap(active: int, max_active_per_user: int) -> bool:
    return bool(max_active_per_user) and active >= max_active_per_user


def fetch_plan(
    backlogs: Sequence[OwnerBacklog],
    active_by_owner: Mapping[str, int],
    free_slots: int,
    *,
    max_active_per_user: int = 0,
    per_owner_limit: int = 0,
) -> dict[str, int]:
    """How many of each owner's oldest waiting jobs to read so :func:`pick_jobs` can decide.

    Owners at their cap get nothing, whatever their backlog, so they cannot hide anyone
    else's job. Of the others, ordered as :func:`pick_jobs` orders them (fewest active,
    oldest job, owner), only the first ``free_slots`` can receive a pick: an owner further
    down is reached only after each owner ahead of it got at least one slot. Each listed
    owner needs at most ``min(free slots, remaining cap, backlog)`` jobs, the most it can
    be given this round; ``per_owner_limit`` (0: none) bounds the read for a huge pool
    without a cap, at the price of leaving slots to the next round.
    """
    if free_slots <= 0:
        return {}
    eligible = [
        b
        for b in backlogs
        if b.waiting > 0 and not _at_cap(active_by_owner.get(b.owner, 0), max_active_per_user)
    ]
    eligible.sort(key=lambda b: (active_by_owner.get(b.owner, 0), b.oldest, b.owner))
    plan: dict[str, int] = {}
    for backlog in eligible[:free_slots]:
        n = min(free_slots, backlog.waiting)
        if max_active_per_user:
            n = min(n, max_active_per_user - active_by_owner.get(backlog.owner, 0))
        if per_owner_limit > 0:
            n = min(n, per_owner_limit)
        plan[backlog.owner] = n
    return plan


def pick_jobs(
    waiting: Sequence[WaitingJob],
    active_by_owner: Mapping[str, int],
    free_slots: int,
    *,
    max_active_per_user: int = 0,
) -> list[str]:
    """Job ids to dispatch now, in dispatch order."""
    if free_slots <= 0 or not waiting:
        return []
    by_owner: dict[str, deque[WaitingJob]] = defaultdict(deque)
    for job in sorted(waiting, key=lambda j: (j.queued_at, j.job_id)):
        by_owner[job.owner].append(job)
    # Heap of (active count, oldest waiting time, owner): fewest active first, then oldest.
    heap = [(active_by_owner.get(o, 0), jobs[0].queued_at, o) for o, jobs in by_owner.items()]
    heapq.heapify(heap)
    picked: list[str] = []
    while heap and len(picked) < free_slots:
        active, _, owner = heapq.heappop(heap)
        if _at_cap(active, max_active_per_user):
            continue
        job = by_owner[owner].popleft()
        picked.append(job.job_id)
        if by_owner[owner]:
            heapq.heappush(heap, (active + 1, by_owner[owner][0].queued_at, owner))
    return picked

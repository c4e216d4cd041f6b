"""Fair-share ordering of waiting jobs.

A heavy user's thousand jobs must not starve a light user's one: each free slot goes to
the user with the fewest jobs already dispatched (counting the picks made so far),
and within a user to the oldest job. Users at their cap are skipped.
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
        if max_active_per_user and active >= max_active_per_user:
            continue
        job = by_owner[owner].popleft()
        picked.append(job.job_id)
        if by_owner[owner]:
            heapq.heappush(heap, (active + 1, by_owner[owner][0].queued_at, owner))
    return picked

"""Pools without a live runner: since when, and which waiting jobs have waited too long (pure).

A job waiting for a pool nobody serves would otherwise stay QUEUED forever with no word
why. The scheduler only knows runners from their heartbeats, and a restarted scheduler
knows none at first, so "no runner since" never starts before the scheduler itself did:
after a restart it waits a full maximum again rather than abort on stale ignorance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from caesar_scheduler.domain.capacity import CapacityTable


@dataclass(frozen=True)
class PoolView:
    """What the scheduler can say about one pool right now."""

    pool: str
    live_runners: int
    slots_total: int
    runnerless_since: datetime | None

    def abort_before(self, now: datetime, max_wait: timedelta) -> datetime | None:
        """Jobs queued before this instant are to be ABORTED (``None``: none are).

        Only once the pool has had no runner for the whole of ``max_wait``; then every job
        that has waited that long goes. A zero ``max_wait`` never aborts.
        """
        if self.runnerless_since is None or max_wait <= timedelta(0):
            return None
        cutoff = now - max_wait
        return cutoff if self.runnerless_since <= cutoff else None


def pool_views(
    capacity: CapacityTable, pools: Sequence[str], now: datetime, started_at: datetime
) -> list[PoolView]:
    """The view of every pool of this deployment."""
    views = []
    for pool in pools:
        live = capacity.live_runners(pool, now)
        since: datetime | None = None
        if live == 0:
            heard = capacity.last_heard(pool)
            gone = heard + capacity.timeout if heard is not None else started_at
            since = max(gone, started_at)
        views.append(PoolView(pool, live, capacity.slots(pool, now), since))
    return views


def waiting_reason(view: PoolView, max_wait: timedelta) -> str:
    """Why jobs of a runnerless pool wait (the text clients see), ``""`` for a served pool."""
    if view.runnerless_since is None:
        return ""
    reason = f"no live runner in pool '{view.pool}' since {view.runnerless_since:%Y-%m-%d %H:%M:%S} UTC"
    if max_wait > timedelta(0):
        reason += f"; jobs waiting {int(max_wait.total_seconds())} s without one are aborted"
    return reason

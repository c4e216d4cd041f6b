"""Runner capacity learnt from heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RunnerSeen:
    runner_id: str
    pool: str
    slots_total: int
    accepting: bool
    seen_at: datetime


FORGET_AFTER = 10
"""Runners silent for this many timeouts are dropped: every restart has a new runner id,
so without pruning the table would grow for as long as the scheduler lives."""


class CapacityTable:
    """Slots per pool, counting only runners heard from recently and accepting work.

    Capacity is the sum of *total* slots; the scheduler subtracts the jobs it has
    dispatched and not yet seen finish, so a heartbeat's momentary ``slots_free`` (which
    lags behind dispatches) is never double counted.
    """

    def __init__(self, timeout: timedelta) -> None:
        self._timeout = timeout
        self._runners: dict[str, RunnerSeen] = {}

    def observe(self, seen: RunnerSeen) -> None:
        current = self._runners.get(seen.runner_id)
        if current is None or current.seen_at <= seen.seen_at:
            self._runners[seen.runner_id] = seen

    def slots(self, pool: str, now: datetime) -> int:
        limit = now - self._timeout
        self._forget_older_than(now - FORGET_AFTER * self._timeout)
        return sum(
            r.slots_total
            for r in self._runners.values()
            if r.pool == pool and r.accepting and r.seen_at >= limit
        )

    def live_runners(self, pool: str, now: datetime) -> int:
        """Runners of ``pool`` heard from within the timeout, accepting work or not."""
        limit = now - self._timeout
        return sum(1 for r in self._runners.values() if r.pool == pool and r.seen_at >= limit)

    def last_heard(self, pool: str) -> datetime | None:
        """When a runner of ``pool`` was last heard from (``None``: not since we started)."""
        return max((r.seen_at for r in self._runners.values() if r.pool == pool), default=None)

    @property
    def timeout(self) -> timedelta:
        return self._timeout

    def _forget_older_than(self, cutoff: datetime) -> None:
        for runner_id in [r.runner_id for r in self._runners.values() if r.seen_at < cutoff]:
            del self._runners[runner_id]

    def __len__(self) -> int:
        return len(self._runners)

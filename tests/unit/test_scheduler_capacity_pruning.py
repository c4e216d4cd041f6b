"""The capacity table forgets runners long gone (every restart has a new runner id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caesar_scheduler.domain.capacity import FORGET_AFTER, CapacityTable, RunnerSeen

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT = timedelta(seconds=20)


def test_runners_silent_for_long_are_forgotten() -> None:
    table = CapacityTable(TIMEOUT)
    for i in range(50):  # fifty restarts of one runner, each with its own id
        table.observe(RunnerSeen(f"host-{i}", "local", 4, True, T0 + i * timedelta(seconds=1)))
    later = T0 + FORGET_AFTER * TIMEOUT + timedelta(seconds=60)
    table.observe(RunnerSeen("host-now", "local", 4, True, later))
    assert table.slots("local", later) == 4
    assert len(table) == 1


def test_a_runner_within_the_horizon_is_kept_but_not_counted() -> None:
    table = CapacityTable(TIMEOUT)
    table.observe(RunnerSeen("quiet", "local", 4, True, T0))
    now = T0 + 2 * TIMEOUT
    assert table.slots("local", now) == 0  # silent past the timeout: no capacity
    assert len(table) == 1  # but not forgotten yet: it may come back

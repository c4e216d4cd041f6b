"""Pure scheduling logic: fair share, routing, capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caesar_scheduler.domain.capacity import CapacityTable, RunnerSeen
from caesar_scheduler.domain.fairshare import WaitingJob, pick_jobs
from caesar_scheduler.domain.routing import NoPoolError, choose_pool

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def jobs(owner: str, n: int, start: int = 0) -> list[WaitingJob]:
    return [WaitingJob(f"{owner}-{i}", owner, T0 + timedelta(seconds=start + i)) for i in range(n)]


def test_light_user_is_not_starved_by_heavy_user() -> None:
    waiting = jobs("heavy", 1000) + jobs("light", 1, start=5000)
    picked = pick_jobs(waiting, {}, 2)
    assert picked == ["heavy-0", "light-0"]


def test_user_with_running_jobs_waits_behind_idle_user() -> None:
    waiting = jobs("busy", 3) + jobs("idle", 3, start=100)
    assert pick_jobs(waiting, {"busy": 2}, 2) == ["idle-0", "idle-1"]


def test_oldest_first_within_a_user() -> None:
    waiting = list(reversed(jobs("u", 5)))
    assert pick_jobs(waiting, {}, 3) == ["u-0", "u-1", "u-2"]


def test_no_free_slots_picks_nothing() -> None:
    assert pick_jobs(jobs("u", 3), {}, 0) == []
    assert pick_jobs([], {}, 5) == []


def test_per_user_cap() -> None:
    waiting = jobs("a", 5) + jobs("b", 5, start=10)
    picked = pick_jobs(waiting, {"a": 1}, 10, max_active_per_user=2)
    assert picked.count("a-0") == 1
    assert sum(p.startswith("a-") for p in picked) == 1
    assert sum(p.startswith("b-") for p in picked) == 2


@given(
    counts=st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 30), min_size=1),
    active=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 5)),
    free=st.integers(0, 60),
)
def test_fair_share_properties(counts: dict[str, int], active: dict[str, int], free: int) -> None:
    waiting = [j for i, (o, n) in enumerate(sorted(counts.items())) for j in jobs(o, n, start=i * 100)]
    picked = pick_jobs(waiting, active, free)
    assert len(picked) == min(free, len(waiting))
    assert len(set(picked)) == len(picked)
    # After the picks, no user who still waits has more than one job above anyone else
    # who got a pick, counting what was already active.
    totals = {o: active.get(o, 0) + sum(p.startswith(f"{o}-") for p in picked) for o in counts}
    left = {o for o in counts if sum(p.startswith(f"{o}-") for p in picked) < counts[o]}
    for owner in counts:
        got = sum(p.startswith(f"{owner}-") for p in picked)
        if got:
            for other in left:
                assert totals[owner] <= totals[other] + 1


def test_choose_pool_prefers_configured_order() -> None:
    assert choose_pool("aegean", {"local", "slurm"}, ["slurm", "local"]) == "slurm"
    assert choose_pool("aegean", {"local", "slurm"}, ["local"]) == "local"


def test_choose_pool_explains_missing_executor() -> None:
    with pytest.raises(NoPoolError, match=r"caesar.*container.*local"):
        choose_pool("caesar", {"container"}, ["local"])


def test_capacity_counts_recent_accepting_runners_only() -> None:
    table = CapacityTable(timedelta(seconds=10))
    table.observe(RunnerSeen("r1", "local", 2, True, T0))
    table.observe(RunnerSeen("r2", "local", 3, True, T0 - timedelta(seconds=30)))
    table.observe(RunnerSeen("r3", "local", 4, False, T0))
    table.observe(RunnerSeen("r4", "slurm", 8, True, T0))
    assert table.slots("local", T0) == 2
    assert table.slots("slurm", T0) == 8
    assert table.slots("local", T0 + timedelta(seconds=11)) == 0


def test_capacity_ignores_older_heartbeat() -> None:
    table = CapacityTable(timedelta(seconds=10))
    table.observe(RunnerSeen("r1", "local", 2, True, T0))
    table.observe(RunnerSeen("r1", "local", 2, False, T0 - timedelta(seconds=1)))
    assert table.slots("local", T0) == 2

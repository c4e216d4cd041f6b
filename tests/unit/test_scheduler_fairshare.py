"""Fair share without a window: the per-owner fetch plan, then the picks (pure, no fakes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from caesar_scheduler.domain.fairshare import OwnerBacklog, WaitingJob, fetch_plan, pick_jobs

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNERS = "abcdef"


def owner_jobs(owner: str, start: int, n: int) -> list[WaitingJob]:
    """An owner's ``n`` oldest jobs: one a second from ``start``, as the database returns them."""
    return [WaitingJob(f"{owner}-{i:07d}", owner, T0 + timedelta(seconds=start + i)) for i in range(n)]


def windowed_picks(
    counts: dict[str, int],
    starts: dict[str, int],
    active: dict[str, int],
    free: int,
    *,
    cap: int = 0,
    limit: int = 0,
) -> list[str]:
    """What one dispatch round picks: summaries, the plan, only the planned jobs read, picks.

    Backlogs exist only as counts, so they can be as long as we like: a job is
    materialised only when the plan asks for it.
    """
    summaries = [OwnerBacklog(o, T0 + timedelta(seconds=starts[o]), n) for o, n in counts.items()]
    plan = fetch_plan(summaries, active, free, max_active_per_user=cap, per_owner_limit=limit)
    assert all(0 < n <= counts[o] for o, n in plan.items())
    fetched = [j for o, n in plan.items() for j in owner_jobs(o, starts[o], n)]
    return pick_jobs(fetched, active, free, max_active_per_user=cap)


def test_owner_at_cap_is_not_read_whatever_its_backlog() -> None:
    backlogs = [OwnerBacklog("heavy", T0, 6000), OwnerBacklog("light", T0 + timedelta(hours=1), 1)]
    plan = fetch_plan(backlogs, {"heavy": 4}, 3, max_active_per_user=4)
    assert plan == {"light": 1}


def test_plan_reads_at_most_what_could_be_dispatched() -> None:
    backlogs = [OwnerBacklog("a", T0, 100), OwnerBacklog("b", T0, 100), OwnerBacklog("c", T0, 100)]
    # Free 10, cap 4: a has 1 active (3 left), b none (4 left), c is at cap.
    assert fetch_plan(backlogs, {"a": 1, "c": 4}, 10, max_active_per_user=4) == {"b": 4, "a": 3}
    # Without a cap, free slots bound the read, and so does the per-owner limit.
    assert fetch_plan(backlogs, {}, 5) == {"a": 5, "b": 5, "c": 5}
    assert fetch_plan(backlogs, {}, 5, per_owner_limit=2) == {"a": 2, "b": 2, "c": 2}
    # Only the first `free` owners in fair-share order can get a slot.
    assert fetch_plan(backlogs, {"a": 2}, 2) == {"b": 2, "c": 2}
    assert fetch_plan(backlogs, {}, 0) == {}


def test_light_user_behind_a_heavy_backlog_at_cap_is_dispatched() -> None:
    counts, starts = {"heavy": 6000, "light": 1}, {"heavy": 0, "light": 10_000}
    assert windowed_picks(counts, starts, {"heavy": 4}, 3, cap=4) == ["light-0000000"]


backlog_counts = st.dictionaries(st.sampled_from(OWNERS), st.integers(1, 12), min_size=1)


@given(
    counts=backlog_counts,
    starts=st.fixed_dictionaries({o: st.integers(0, 20) for o in OWNERS}),
    active=st.dictionaries(st.sampled_from(OWNERS), st.integers(0, 5)),
    free=st.integers(0, 30),
    cap=st.integers(0, 4),
)
def test_reading_the_plan_picks_what_reading_everything_would(
    counts: dict[str, int], starts: dict[str, int], active: dict[str, int], free: int, cap: int
) -> None:
    """Without a per-owner limit the plan loses nothing: same picks, same order."""
    everything = [j for o, n in counts.items() for j in owner_jobs(o, starts[o], n)]
    expected = pick_jobs(everything, active, free, max_active_per_user=cap)
    assert windowed_picks(counts, starts, active, free, cap=cap) == expected


@given(
    counts=st.dictionaries(st.sampled_from(OWNERS), st.integers(1, 10**6), min_size=1),
    starts=st.fixed_dictionaries({o: st.integers(0, 10**6) for o in OWNERS}),
    active=st.dictionaries(st.sampled_from(OWNERS), st.integers(0, 6)),
    free=st.integers(1, 40),
    cap=st.integers(0, 5),
    limit=st.integers(0, 8),
)
def test_no_owner_with_a_dispatchable_job_is_starved(
    counts: dict[str, int],
    starts: dict[str, int],
    active: dict[str, int],
    free: int,
    cap: int,
    limit: int,
) -> None:
    """Whatever the others' backlogs, an owner below cap with a waiting job is skipped only
    when every free slot went to owners who, before their last pick, had no more jobs
    dispatched than it has.
    """
    picked = windowed_picks(counts, starts, active, free, cap=cap, limit=limit)
    got = {o: sum(p.startswith(f"{o}-") for p in picked) for o in counts}
    assert len(set(picked)) == len(picked)
    for owner in counts:
        mine = active.get(owner, 0)
        if cap:
            assert mine + got[owner] <= max(cap, mine)
        if got[owner] or (cap and mine >= cap):
            continue
        assert len(picked) == free
        for other, n in got.items():
            if n:
                assert active.get(other, 0) + n - 1 <= mine

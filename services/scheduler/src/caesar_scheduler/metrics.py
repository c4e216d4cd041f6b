"""Prometheus metrics of the scheduler: dispatches, re-sends, and per pool what waits and what is free."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DISPATCHES = Counter("caesar_scheduler_dispatches_total", "RunJob commands sent", ["pool"])
WAITING_JOBS = Gauge("caesar_scheduler_waiting_jobs", "Admitted jobs waiting for a runner slot", ["pool"])
FREE_SLOTS = Gauge("caesar_scheduler_free_slots", "Runner slots not taken by dispatched jobs", ["pool"])
START_RESENDS = Counter(
    "caesar_scheduler_start_resends_total",
    "RunJob commands sent again because no runner reported STARTED within the start timeout",
    ["pool"],
)
NEVER_STARTED = Counter(
    "caesar_scheduler_never_started_total",
    "Attempts failed (retryable) because no runner started them after every re-send",
    ["pool"],
)
LIVE_RUNNERS = Gauge(
    "caesar_scheduler_live_runners", "Runners heard from within the heartbeat expiry", ["pool"]
)
ABORTED_WITHOUT_RUNNER = Counter(
    "caesar_scheduler_aborted_without_runner_total",
    "Jobs ABORTED after waiting too long for a pool with no live runner",
    ["pool"],
)
LEADER = Gauge("caesar_scheduler_leader", "1 while this replica holds the dispatcher lease")
RETRIES = Counter(
    "caesar_scheduler_retries_total",
    "New attempts opened after an infrastructure failure (runner lost, never started)",
    ["pool"],
)


def watched_pool(pool: str, live_runners: int) -> None:
    """Set a pool's live runners; show its counters at 0 before anything happens to it.

    A labelled counter has no series until its first increment, so a dashboard or alert
    could not tell "none yet" from "not exported". Pools are few and fixed (settings).
    """
    LIVE_RUNNERS.labels(pool).set(live_runners)
    for counter in (DISPATCHES, START_RESENDS, NEVER_STARTED, ABORTED_WITHOUT_RUNNER, RETRIES):
        counter.labels(pool)

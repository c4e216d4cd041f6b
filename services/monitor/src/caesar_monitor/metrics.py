"""Prometheus metrics of the monitor.

``caesar_jobs{state}`` is *recounted* from the timelines collection (one indexed count
per state) rather than maintained with inc/dec on transitions: a counted gauge is right
after a restart, with several monitor replicas, and after a missed or duplicated event,
whereas an incremental one drifts and starts from zero in every process. The counts are
taken state after state, not as one snapshot: a job that moves during a recount may be
counted in two states until the next one (``metrics_interval_s`` later). The histograms
are observed exactly once per transition, by the process whose guarded write applied it.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Gauge, Histogram

from caesar_common.jobstate import JobState
from caesar_monitor.domain.timeline import Advance

# Seconds to days: jobs wait from milliseconds (idle cluster) to hours (busy one).
_DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOBS = Gauge("caesar_jobs", "Jobs by current state (recounted periodically)", ["state"])
QUEUE_WAIT = Histogram(
    "caesar_job_queue_wait_seconds",
    "Time from QUEUED to STARTED, once per attempt",
    ["app"],
    buckets=_DURATION_BUCKETS,
)
RUN_TIME = Histogram(
    "caesar_job_run_seconds",
    "Time from STARTED to the terminal state, once per attempt",
    ["app"],
    buckets=_DURATION_BUCKETS,
)
RUNNER_SLOTS = Gauge(
    "caesar_runner_slots",
    "Slots of the runners heard from within the heartbeat timeout, by pool",
    ["pool", "kind"],
)
EVENT_LAG = Histogram(
    "caesar_event_lag_seconds",
    "Delay between an event's creation and its consumption by the monitor",
    buckets=_LAG_BUCKETS,
)


def observe_advance(app: str, advance: Advance) -> None:
    """Record the durations a just-applied transition completed."""
    if advance.queue_wait_s is not None:
        QUEUE_WAIT.labels(app).observe(advance.queue_wait_s)
    if advance.run_s is not None:
        RUN_TIME.labels(app).observe(advance.run_s)


def set_job_counts(counts: Mapping[JobState, int]) -> None:
    for state in JobState:
        JOBS.labels(state.value).set(counts.get(state, 0))


def set_runner_slots(slots: Mapping[str, tuple[int, int]]) -> None:
    """Replace the slot gauges with ``{pool: (total, free)}`` (pools gone drop out)."""
    # No await between clear and set: a scrape on the same event loop never sees a gap.
    RUNNER_SLOTS.clear()
    for pool, (total, free) in slots.items():
        RUNNER_SLOTS.labels(pool, "total").set(total)
        RUNNER_SLOTS.labels(pool, "free").set(free)


DEAD_LETTERS = Gauge(
    "caesar_dead_letter_messages",
    "Messages waiting in each service queue's dead-letter queue (an operator must look)",
    ["queue"],
)

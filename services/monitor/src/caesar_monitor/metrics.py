"""Prometheus metrics of the monitor.

``caesar_jobs{state}`` is *recounted* from the timelines collection (one indexed count
per state) rather than maintained with inc/dec on transitions: a counted gauge is right
after a restart, with several monitor replicas, and after a missed or duplicated event,
whereas an incremental one drifts and starts from zero in every process. The counts are
taken state after state, not as one snapshot: a job that moves during a recount may be
counted in two states until the next one (``metrics_interval_s`` later). The histograms
are observed exactly once per transition, by the process whose guarded write applied it,
and so is ``caesar_job_failures_total``: every failed attempt (a lost runner's too) and
every abort, with its free-text reason mapped to a small fixed set (:func:`failure_reason`)
so the label stays bounded.

``caesar_job_oldest_in_state_seconds`` and ``caesar_runner_heartbeat_age_seconds`` are
recounted from the database too (a stuck job, a silent runner), so every replica exports
the same values; the heartbeat ages are computed at scrape time from the stored
``last_seen``, so they grow between refreshes as a silent runner's real age does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from caesar_common.apps import app_names
from caesar_common.jobstate import TERMINAL_STATES, JobState
from caesar_monitor.domain.liveness import ATTEMPT_NOT_REPORTED, RUNNER_LOST
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


FAILURES = Counter(
    "caesar_job_failures_total",
    "Attempts that ended FAILURE or TIMED-OUT, and jobs ABORTED, by app and reason (a fixed set)",
    ["app", "reason"],
)
OLDEST_IN_STATE = Gauge(
    "caesar_job_oldest_in_state_seconds",
    "How long the job longest in each non-terminal state has been in it (0: no job there)",
    ["state"],
)
NON_TERMINAL_STATES: Final = tuple(s for s in JobState if s not in TERMINAL_STATES)

# Reasons are free text written by the runner, the monitor and the scheduler; the metric
# keeps only these, matched on the fixed beginnings those services write.
FAILURE_REASONS: Final = (
    "app_error",  # the app exited non-zero: the user's inputs or the app itself
    "timeout",  # wall time exceeded (TIMED-OUT)
    "runner_lost",  # the runner stopped heartbeating or dropped the attempt (retried)
    "never_started",  # no runner took the command after every re-send (retried)
    "infrastructure",  # any other retryable failure: Slurm, the job user, ...
    "gave_up",  # ABORTED after the last retry
    "no_runner",  # ABORTED: the pool had no runner for too long
    "no_pool",  # ABORTED: no pool of this deployment runs the app
    "other",
)
_RUNNER_LOST_PREFIXES: Final = (RUNNER_LOST, ATTEMPT_NOT_REPORTED, "runner restarted")
_NEVER_STARTED_PREFIX: Final = "never started"  # caesar_scheduler.domain.start.NEVER_STARTED
_ABORT_PREFIXES: Final = (
    ("gave up after", "gave_up"),  # caesar_scheduler.domain.retry.GiveUp
    ("no live runner", "no_runner"),  # caesar_scheduler.domain.pool_status.waiting_reason
    ("no runner pool", "no_pool"),  # caesar_scheduler.domain.routing
)


def failure_reason(state: str, *, retryable: bool, reason: str, exit_code: int | None) -> str | None:
    """The ``reason`` label of a transition to ``state``, or ``None`` if it is no failure."""
    if state == JobState.TIMED_OUT.value:
        return "timeout"
    if state == JobState.FAILURE.value:
        if retryable:
            if reason.startswith(_RUNNER_LOST_PREFIXES):
                return "runner_lost"
            if reason.startswith(_NEVER_STARTED_PREFIX):
                return "never_started"
            return "infrastructure"
        return "app_error" if exit_code not in (None, 0) else "other"
    if state == JobState.ABORTED.value:
        return next((label for prefix, label in _ABORT_PREFIXES if reason.startswith(prefix)), "other")
    return None


def show_apps(apps: Iterable[str]) -> None:
    """Create each app's histogram series at zero, before its first job.

    A labelled series appears with its first observation, which ``rate()`` cannot see
    (there is no earlier sample to compare with): after every restart the p50/p95 panels
    of an app would stay empty until its second job. The apps are the fixed registry.
    """
    for app in apps:
        QUEUE_WAIT.labels(app)
        RUN_TIME.labels(app)


show_apps(app_names())


def observe_advance(app: str, advance: Advance, entry: Mapping[str, Any] | None = None) -> None:
    """Record the durations a just-applied transition completed, and a failure it was.

    ``entry`` is the timeline entry of the event that made the transition: its reason
    and exit code say why a failure happened.
    """
    if advance.queue_wait_s is not None:
        QUEUE_WAIT.labels(app).observe(advance.queue_wait_s)
    if advance.run_s is not None:
        RUN_TIME.labels(app).observe(advance.run_s)
    reason = failure_reason(
        str(advance.fields.get("state") or ""),
        retryable=bool(advance.fields.get("retryable")),
        reason=str((entry or {}).get("reason") or ""),
        exit_code=(entry or {}).get("exit_code"),
    )
    if reason is not None:
        FAILURES.labels(app, reason).inc()


def set_oldest_in_state(now: datetime, oldest: Mapping[JobState, datetime]) -> None:
    """``oldest``: the earliest ``last_change`` of the jobs in each state (absent: none)."""
    for state in NON_TERMINAL_STATES:
        since = oldest.get(state)
        age = 0.0 if since is None else max(0.0, (now - since).total_seconds())
        OLDEST_IN_STATE.labels(state.value).set(age)


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


class HeartbeatAges(Collector):
    """``caesar_runner_heartbeat_age_seconds{pool,runner}``: seconds since each runner was
    last heard from, computed when Prometheus scrapes.

    The runners shown are those the monitor heard from within
    :data:`caesar_monitor.service.gauges.HEARTBEAT_AGE_WINDOW`
    (replaced at every recount) plus each heartbeat this process consumes since: a lost
    runner's age keeps growing for an hour, then it drops out, so runner ids that a restart
    retired do not pile up (cardinality: the runners of the last hour).
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[str, datetime]] = {}

    def replace(self, seen: Mapping[str, tuple[str, datetime]]) -> None:
        """``seen``: ``{runner_id: (pool, last_seen)}`` as the database has them."""
        self._seen = dict(seen)

    def heard(self, runner_id: str, pool: str, at: datetime) -> None:
        previous = self._seen.get(runner_id)
        if previous is None or previous[1] < at:
            self._seen[runner_id] = (pool, at)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "caesar_runner_heartbeat_age_seconds",
            "Seconds since each runner's latest heartbeat reached the monitor",
            labels=["pool", "runner"],
        )
        now = self._clock()
        for runner_id, (pool, last_seen) in sorted(self._seen.items()):
            family.add_metric([pool, runner_id], max(0.0, (now - last_seen).total_seconds()))
        yield family


HEARTBEAT_AGES = HeartbeatAges()
REGISTRY.register(HEARTBEAT_AGES)

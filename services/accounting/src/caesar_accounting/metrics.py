"""Prometheus metrics of accounting.

The counters move only when this process's guarded write recorded a final outcome for
the first time, so redeliveries never inflate them (several replicas sum correctly).
``caesar_accounting_bytes_stored`` is recomputed from the database, not counted, so it is
right in every replica and after every restart.
"""

from __future__ import annotations

from contextlib import suppress

from prometheus_client import Counter, Gauge

from caesar_accounting.domain.usage import FinalOutcome

JOBS = Counter("caesar_accounting_jobs_total", "Jobs accounted with a final outcome", ["app", "outcome"])
CPU_SECONDS = Counter("caesar_accounting_cpu_seconds_total", "CPU seconds of accounted jobs", ["app"])
WALL_SECONDS = Counter(
    "caesar_accounting_wall_seconds_total", "Wall-clock seconds of accounted jobs", ["app"]
)
BYTES_STORED = Gauge("caesar_accounting_bytes_stored", "Bytes of uploaded files not deleted")
# Per user and app, for the Users dashboard: one series per (owner, app) pair that ever
# finished a job in this process, so users x apps at most (each user runs a few apps).
# Fine for an observatory's hundreds of users; a public service with many thousands
# would drop these and read the usage reports (/api/v2/accounting/usage) instead.
USER_JOBS = Counter(
    "caesar_accounting_user_jobs_total", "Jobs accounted with a final outcome, by owner", ["owner", "app"]
)
USER_CPU_SECONDS = Counter(
    "caesar_accounting_user_cpu_seconds_total", "CPU seconds of accounted jobs, by owner", ["owner", "app"]
)


def count_outcome(outcome: FinalOutcome) -> None:
    JOBS.labels(outcome.app, outcome.outcome.routing_suffix).inc()
    USER_JOBS.labels(outcome.owner, outcome.app).inc()
    # Created with the job count, so a user's CPU series exists even at 0 s used.
    user_cpu = USER_CPU_SECONDS.labels(outcome.owner, outcome.app)
    if outcome.cpu_s:
        CPU_SECONDS.labels(outcome.app).inc(outcome.cpu_s)
        user_cpu.inc(outcome.cpu_s)
    if outcome.wall_s:
        WALL_SECONDS.labels(outcome.app).inc(outcome.wall_s)


# Per user: the quota dashboards show who is near their limits. One series per user and
# resource (three), only where a quota policy is configured.
QUOTA_USED = Gauge("caesar_quota_used", "A user's usage of a quota resource", ["owner", "resource"])
QUOTA_LIMIT = Gauge(
    "caesar_quota_limit", "A user's limit of a quota resource (absent: unlimited)", ["owner", "resource"]
)


def observe_quota(owner: str, used: dict[str, float], limits: dict[str, float | None]) -> None:
    for resource, value in used.items():
        QUOTA_USED.labels(owner, resource).set(value)
        limit = limits.get(resource)
        if limit is None:
            with suppress(KeyError):  # no series for an unlimited resource
                QUOTA_LIMIT.remove(owner, resource)
        else:
            QUOTA_LIMIT.labels(owner, resource).set(limit)

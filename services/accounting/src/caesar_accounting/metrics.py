"""Prometheus metrics of accounting.

The counters move only when this process's guarded write recorded a final outcome for
the first time, so redeliveries never inflate them (several replicas sum correctly).
``caesar_accounting_bytes_stored`` is recomputed from the database, not counted, so it is
right in every replica and after every restart.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from caesar_accounting.domain.usage import FinalOutcome

JOBS = Counter("caesar_accounting_jobs_total", "Jobs accounted with a final outcome", ["app", "outcome"])
CPU_SECONDS = Counter("caesar_accounting_cpu_seconds_total", "CPU seconds of accounted jobs", ["app"])
WALL_SECONDS = Counter(
    "caesar_accounting_wall_seconds_total", "Wall-clock seconds of accounted jobs", ["app"]
)
BYTES_STORED = Gauge("caesar_accounting_bytes_stored", "Bytes of uploaded files not deleted")


def count_outcome(outcome: FinalOutcome) -> None:
    JOBS.labels(outcome.app, outcome.outcome.routing_suffix).inc()
    if outcome.cpu_s:
        CPU_SECONDS.labels(outcome.app).inc(outcome.cpu_s)
    if outcome.wall_s:
        WALL_SECONDS.labels(outcome.app).inc(outcome.wall_s)

"""Settings of the monitor service (``CAESAR_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from caesar_common.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    """Connection settings plus the watchdog's clocks."""

    http_port: int = Field(8083, title="HTTP port (health, readiness, metrics, timelines)")
    runner_timeout_s: float = Field(
        30.0,
        title="Runner heartbeat timeout",
        description=(
            "A job in STARTED/RUNNING whose runner has not heartbeated for this long is "
            "declared lost (FAILURE, retryable). Several heartbeat periods, so one late "
            "heartbeat does not fail a healthy job."
        ),
    )
    runner_timeout_by_pool: dict[str, float] = Field(
        default_factory=lambda: {"slurm": 900.0, "k8s": 900.0},
        title="Runner timeout per pool",
        description=(
            'JSON object, e.g. {"slurm": 900}: pools whose attempts outlive their runner '
            "(a Slurm job or a Kubernetes Job runs on without it, and a restarted runner "
            "reattaches) get a longer "
            "timeout, so a runner restart of up to 10 minutes cancels and resubmits nothing. "
            "Other pools use CAESAR_RUNNER_TIMEOUT_S."
        ),
    )
    watchdog_interval_s: float = Field(
        5.0, title="Watchdog period", description="How often stranded jobs are looked for."
    )
    wall_time_grace_s: float = Field(
        60.0,
        title="Wall-time grace",
        description=(
            "The runner enforces wall time itself; the monitor steps in (TIMED-OUT) only "
            "when a job is still RUNNING this long after its limit."
        ),
    )
    metrics_interval_s: float = Field(
        15.0,
        title="Gauge refresh period",
        description="How often the jobs-by-state and runner-slot gauges are recounted.",
    )

"""Scheduler settings (``CAESAR_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from caesar_common.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    http_port: int = Field(8081, title="HTTP port (health, readiness, metrics)")
    pools: list[str] = Field(
        default_factory=lambda: ["local"],
        title="Executor pools of this deployment",
        description="Runner pools that exist here; an app none of them can run is ABORTED.",
    )
    runner_timeout_s: float = Field(
        20.0,
        title="Heartbeat expiry",
        description="A runner not heard from for this long adds no capacity.",
    )
    dispatch_interval_s: float = Field(1.0, title="Dispatch period when nothing wakes the dispatcher")
    max_active_per_user: int = Field(
        4,
        title="Per-user cap on dispatched jobs",
        description=(
            "At most this many of one user's jobs are dispatched (running or about to) at a "
            "time; the rest wait QUEUED, so one user cannot take every runner slot. 0: no cap "
            "beyond fair share."
        ),
        ge=0,
    )
    max_attempts: int = Field(
        3,
        title="Attempts per job",
        description="A job whose runner was lost is retried as new attempts, up to this many in all.",
    )
    retry_backoff_s: float = Field(
        5.0, title="Retry backoff", description="Delay before attempt n+1 is dispatched: backoff * 2^(n-1)."
    )
    slurm_min_image_bytes: int = Field(
        0,
        title="Image size that goes to Slurm",
        description="With a slurm pool configured: images at least this large run on Slurm, smaller "
        "ones on another pool the app supports. 0: the order of pools decides.",
    )
    slurm_apps: list[str] = Field(
        default_factory=list,
        title="Apps the size rule sends to Slurm",
        description="Empty: every app that can run on Slurm (e.g. aegean).",
    )

"""Scheduler settings (``CAESAR_*`` environment variables)."""

from __future__ import annotations

from typing import Final

from pydantic import Field, model_validator

from caesar_common.settings import ServiceSettings
from caesar_scheduler.domain.routing import PoolRule

# The pool the deprecated size settings always meant; the one place the scheduler names it.
_DEPRECATED_SIZE_RULE_POOL: Final = "slurm"


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
    dispatch_fetch_per_owner: int = Field(
        100,
        ge=0,
        title="Jobs of one owner read per dispatch round",
        description=(
            "A round reads, per owner that could get a slot, at most min(free slots, the "
            "owner's remaining cap, this) of their oldest waiting jobs; the rest wait a round. "
            "0: no bound beyond free slots and cap."
        ),
    )
    start_timeout_s: float = Field(
        120.0,
        gt=0,
        title="Start timeout",
        description=(
            "A dispatched job that no runner reported STARTED this long after its RunJob was "
            "sent gets the same command again (checked every quarter of this)."
        ),
    )
    max_start_resends: int = Field(
        3,
        ge=0,
        title="Re-sends of a RunJob never started",
        description=(
            "After this many re-sends without a STARTED the attempt fails as retryable "
            "('never started'), and the retry policy decides (new attempt or ABORTED)."
        ),
    )
    max_wait_without_runner_s: float = Field(
        86400.0,
        ge=0,
        title="Longest wait for a pool without a runner",
        description=(
            "Jobs waiting for a pool that has had no live runner for this long, and have "
            "waited this long themselves, are ABORTED. Meanwhile their status says the pool "
            "has no runner. 0: wait forever."
        ),
    )
    leader_lease_s: float = Field(
        15.0,
        gt=0,
        title="Dispatcher lease",
        description=(
            "Of several scheduler replicas, the one holding this lease dispatches (and "
            "reconciles); it renews it every fifth of this time. If it dies, another takes "
            "over within this time. Every replica consumes events (their writes are guarded)."
        ),
    )
    pool_status_interval_s: float = Field(
        5.0, gt=0, title="How often pools are checked for live runners (and announced)"
    )
    max_attempts: int = Field(
        3,
        title="Attempts per job",
        description="A job whose runner was lost is retried as new attempts, up to this many in all.",
    )
    retry_backoff_s: float = Field(
        5.0, title="Retry backoff", description="Delay before attempt n+1 is dispatched: backoff * 2^(n-1)."
    )
    pool_rules: list[PoolRule] = Field(
        default_factory=list,
        title="Routing rules, first match wins",
        description=(
            'JSON list, e.g. [{"pool": "slurm", "min_image_bytes": 1000000, "apps": ["aegean"]}]: '
            "a job goes to the pool of the first rule whose pool the app can use and whose "
            "conditions hold (apps: empty = every app; min_image_bytes: 0 = any size). "
            "Without a match, the order of CAESAR_POOLS decides."
        ),
    )
    slurm_min_image_bytes: int = Field(
        0,
        ge=0,
        title="Deprecated: use pool_rules",
        description=(
            "Deprecated (translated into pool_rules): images at least this large go to the "
            "slurm pool, smaller ones to another pool the app supports. 0: off."
        ),
    )
    slurm_apps: list[str] = Field(
        default_factory=list,
        title="Deprecated: use pool_rules",
        description="Deprecated (translated into pool_rules): the apps the size rule applies to; empty: all.",
    )

    @model_validator(mode="after")
    def _translate_deprecated_size_rule(self) -> SchedulerSettings:
        """Keep ``CAESAR_SLURM_MIN_IMAGE_BYTES``/``CAESAR_SLURM_APPS`` working, as rules.

        They meant: big images (of the listed apps) to the slurm pool, everything else to
        *another* pool the app supports, whatever the order of ``pools``. As rules: the
        size rule, then one catch-all rule per other pool in the deployment's order (if
        none is usable the fallback, the first usable pool, is slurm itself, as before).
        """
        if self.slurm_min_image_bytes <= 0:
            return self
        if self.pool_rules:
            raise ValueError(
                "set CAESAR_POOL_RULES or the deprecated CAESAR_SLURM_MIN_IMAGE_BYTES/CAESAR_SLURM_APPS, "
                "not both"
            )
        size_rule = PoolRule(
            pool=_DEPRECATED_SIZE_RULE_POOL,
            min_image_bytes=self.slurm_min_image_bytes,
            apps=tuple(self.slurm_apps),
        )
        others = [PoolRule(pool=p) for p in self.pools if p != _DEPRECATED_SIZE_RULE_POOL]
        self.pool_rules = [size_rule, *others]
        return self

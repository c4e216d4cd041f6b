"""Recounting the gauges from the database (right after restarts and with replicas)."""

from __future__ import annotations

from datetime import datetime, timedelta

from caesar_common.events import RunnerHeartbeat
from caesar_monitor import metrics
from caesar_monitor.service.ports import RunnerStore, TimelineStore


async def observe_heartbeat(
    runners: RunnerStore, heartbeat: RunnerHeartbeat, now: datetime, runner_timeout_s: float
) -> None:
    """Store the heartbeat (unless a newer one is stored), then refresh the slot gauges."""
    await runners.record(heartbeat, now)
    await refresh_runner_slots(runners, now, runner_timeout_s)


async def refresh_runner_slots(runners: RunnerStore, now: datetime, runner_timeout_s: float) -> None:
    """Slot gauges summed per pool over the runners not yet timed out."""
    alive_since = now - timedelta(seconds=runner_timeout_s)
    metrics.set_runner_slots(await runners.slots_by_pool(alive_since))


async def refresh_gauges(
    timelines: TimelineStore, runners: RunnerStore, now: datetime, runner_timeout_s: float
) -> None:
    """Recount jobs by state (one indexed count each) and the live runners' slots."""
    metrics.set_job_counts(await timelines.count_by_state())
    await refresh_runner_slots(runners, now, runner_timeout_s)

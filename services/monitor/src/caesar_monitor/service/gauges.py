"""Recounting the gauges from the database (right after restarts and with replicas)."""

from __future__ import annotations

from datetime import datetime, timedelta

from caesar_monitor import metrics
from caesar_monitor.service.ports import RunnerStore, TimelineStore


async def refresh_runner_slots(runners: RunnerStore, now: datetime, runner_timeout_s: float) -> None:
    """Slot gauges summed per pool over the runners not yet timed out."""
    alive_since = now - timedelta(seconds=runner_timeout_s)
    metrics.set_runner_slots(await runners.slots_by_pool(alive_since))


async def refresh_gauges(
    timelines: TimelineStore, runners: RunnerStore, now: datetime, runner_timeout_s: float
) -> None:
    """Recount jobs by state (one indexed count each) and the live runners' slots; look up
    the job longest in each non-terminal state and the runners' latest heartbeats.

    Runners silent for a day are forgotten here too: every restart has a new runner id,
    so the collection would otherwise grow for as long as the deployment lives. A job
    still pointing at one is judged from its own start, as for any silent runner.
    """
    metrics.set_job_counts(await timelines.count_by_state())
    metrics.set_oldest_in_state(now, await timelines.oldest_change_by_state(metrics.NON_TERMINAL_STATES))
    await runners.forget_silent(now - FORGET_RUNNERS_AFTER)
    await refresh_runner_slots(runners, now, runner_timeout_s)
    metrics.HEARTBEAT_AGES.replace(await runners.heard_since(now - HEARTBEAT_AGE_WINDOW))


FORGET_RUNNERS_AFTER = timedelta(days=1)
HEARTBEAT_AGE_WINDOW = timedelta(hours=1)
"""Runners silent for longer drop out of ``caesar_runner_heartbeat_age_seconds``: long
enough to watch a lost runner's age grow, short enough that the ids of restarted runners
(a new id per process) do not pile up as series."""

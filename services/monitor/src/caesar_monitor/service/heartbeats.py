"""Recording a runner's heartbeat: fold it into the runner's report, then recount slots.

The report (:class:`caesar_monitor.domain.liveness.RunnerReport`) remembers since when
each attempt has been missing from the runner's heartbeats, which needs the previous
report: read, fold (pure), write guarded on the heartbeat read. A lost race (another
replica stored a heartbeat of the same runner meanwhile) reads again; a heartbeat older
than the stored one changes nothing (it overtook nobody: heartbeats are snapshots).
"""

from __future__ import annotations

from datetime import datetime

from caesar_common.events import RunnerHeartbeat
from caesar_monitor import metrics
from caesar_monitor.domain.liveness import RunnerReport, fold_heartbeat
from caesar_monitor.service.gauges import refresh_runner_slots
from caesar_monitor.service.ports import RunnerStore

# Two replicas racing on one runner's heartbeats settle in a read or two; failing loudly
# (the bus retries the message) beats looping.
MAX_RACES = 8


async def observe_heartbeat(
    runners: RunnerStore, heartbeat: RunnerHeartbeat, now: datetime, runner_timeout_s: float
) -> RunnerReport | None:
    """Store the heartbeat unless a newer one is stored, then refresh the slot gauges.

    Returns the report stored, or ``None`` for a stale (or duplicate) heartbeat.
    """
    stored = await record_heartbeat(runners, heartbeat, now, runner_timeout_s)
    if stored is not None:
        metrics.HEARTBEAT_AGES.heard(heartbeat.runner_id, heartbeat.pool, stored.last_seen)
    await refresh_runner_slots(runners, now, runner_timeout_s)
    return stored


async def record_heartbeat(
    runners: RunnerStore, heartbeat: RunnerHeartbeat, now: datetime, runner_timeout_s: float
) -> RunnerReport | None:
    running = [(ref.job_id, ref.attempt) for ref in heartbeat.running]
    for _ in range(MAX_RACES):
        previous = await runners.report(heartbeat.runner_id)
        if previous is not None and previous.sent_at >= heartbeat.sent_at:
            return None
        report = fold_heartbeat(
            previous,
            sent_at=heartbeat.sent_at,
            received_at=now,
            running=running,
            # Twice the timeout: forgetting changes no verdict once it is at least one.
            forget_after_s=2 * runner_timeout_s,
        )
        replaces = previous.sent_at if previous is not None else None
        if await runners.record(heartbeat, report, replaces=replaces):
            return report
    raise RuntimeError(f"report of runner {heartbeat.runner_id} kept changing under the monitor")
